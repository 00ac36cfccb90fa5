"""A prompt linter: keyframe prompts describe the frame as it should be, never the change.

Image models are trained on captions of pictures. A caption says what is in a picture
("a purple sky over the mountains"); it never says what to change ("change the sky to
purple") and hardly ever what is absent. Negation is worse than useless: "a street with
no cars" puts the word "cars" into the conditioning and tends to *add* cars. So each
keyframe prompt is a *target state*: what the frame shows once it is done.

``lint_prompt(text)`` finds change-style wording (instructions, "instead of", removals,
additions) and negatives, each as a ``Finding`` with the character span that triggered
it and a suggested target-state rewrite. The rules are word-boundary aware ("snow",
"notebook", "nothing", "a no-parking sign" are fine) and deliberately simple: a
suggestion is a starting point for the artist, not a rewrite to apply blindly.

Standard library only (``retake prompts lint`` and the host panels use it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Finding", "lint_prompt", "rewrite"]

KINDS = ("change", "removal", "addition", "negative")


@dataclass(frozen=True)
class Finding:
    """One problem of a prompt.

    kind: "change" (an instruction to change something, "instead of"), "removal",
    "addition" or "negative"; span: ``(start, end)`` character offsets of the
    triggering words in the prompt; message: what is wrong and why; suggestion: a
    target-state rewrite of the whole prompt, or, where none can be derived, how
    to write one.
    """

    kind: str
    span: tuple[int, int]
    message: str
    suggestion: str


# --- word classes -------------------------------------------------------------------

_DETERMINER = r"(?:the|a|an|this|that|these|those|my|our|his|her|their|its|some)"
# An imperative starts a clause: the start of the prompt, after punctuation, or after a
# connective. This keeps "a sharp turn in the road" or "a make of car" clean.
_CLAUSE_START = r"(?:^\s*|[,.;:!?]\s*|\b(?:and|then|please|also|just|now)\s+)"
# Where the phrase naming a target ends: punctuation, a connective or a preposition
# that attaches the rest of the scene ("... purple over the mountains").
_PHRASE_END = (r"(?=\s*[,.;:!?]|\s+(?:and|but|while|with|over|above|under|below|in|on|at|behind|near|beside"
               r"|across|through|against|from|for|instead)\b|\s*$)")
_PHRASE = r"[^,.;:!?]+?"
_PRONOUN_SUBJECTS = {"it", "this", "that", "everything", "all", "the image", "the picture", "the shot",
                     "the scene", "the frame", "the plate", "the whole thing", "the whole image"}
_VOWEL_SOUND = re.compile(r"^(?:[aeio]|u(?!ni|se|sa|ro)|hour|honest)", re.IGNORECASE)

_FLAGS = re.IGNORECASE

# "change the sky to purple", "turn the car into a truck", "paint the walls red"
_CHANGE_TO = re.compile(
    _CLAUSE_START + r"(?P<verb>change|turn|convert|transform|switch|alter|colou?r|paint|shift)\s+(?P<x>" + _PHRASE
    + r")\s+(?P<prep>to|into)\s+(?P<y>" + _PHRASE + r")" + _PHRASE_END, _FLAGS)
# "make the sky purple", "make it night", "make it look like winter"
_MAKE = re.compile(
    _CLAUSE_START + r"(?P<verb>make|get)\s+(?P<x>it|this|that|everything|all|(?:the\s+)?(?:whole\s+)?"
    r"(?:image|picture|shot|scene|frame|plate)|" + _DETERMINER + r"\s+[^,.;:!?]+?)\s+"
    r"(?:(?:look|feel|seem)\s+(?:like\s+)?|(?:be|become)\s+)?(?P<y>[^,.;:!?\s][^,.;:!?]*?)" + _PHRASE_END, _FLAGS)
# "replace the car with a bicycle", "swap the car for a bicycle"
_REPLACE = re.compile(
    _CLAUSE_START + r"(?P<verb>replace|swap|exchange|substitute)\s+(?P<x>" + _PHRASE + r")\s+(?:with|for|by)\s+"
    r"(?P<y>" + _PHRASE + r")" + _PHRASE_END, _FLAGS)
# "a bicycle instead of the car", "rather than the car"
_INSTEAD = re.compile(r"\s*\b(?P<verb>instead\s+of|rather\s+than|in\s+place\s+of)\s+(?P<x>" + _PHRASE + r")"
                      + _PHRASE_END, _FLAGS)
# "the sky should be purple", "the sky needs to be purple"
_SHOULD = re.compile(
    r"(?P<x>\b" + _DETERMINER + r"\s+[^,.;:!?]+?)\s+(?P<verb>should\s+(?:be|become|look)|needs?\s+to\s+(?:be|become)"
    r"|has\s+to\s+be|must\s+(?:be|become))\s+(?:like\s+)?(?P<y>" + _PHRASE + r")" + _PHRASE_END, _FLAGS)
# "remove the car", "get rid of the car from the street", "erase the wires"
_REMOVE = re.compile(
    _CLAUSE_START + r"(?P<verb>remove|delete|erase|get\s+rid\s+of|take\s+out|take\s+away|paint\s+out|clean\s+up"
    r"|eliminate)\s+(?P<x>" + _PHRASE + r")(?:\s+(?:from|off|out\s+of)\s+(?P<place>" + _PHRASE + r"))?"
    + _PHRASE_END, _FLAGS)
# "add a hat to the man", "add snow"
_ADD = re.compile(
    _CLAUSE_START + r"(?P<verb>add|put|place|insert|give)\s+(?P<x>" + _PHRASE + r")(?:\s+(?:to|on|onto|in|into)\s+"
    r"(?P<place>" + _PHRASE + r"))?" + _PHRASE_END, _FLAGS)
# A bare instruction verb with no target we can parse ("change the sky").
_BARE_INSTRUCTION = re.compile(
    _CLAUSE_START + r"(?P<verb>change|turn|convert|transform|make|replace|swap|alter|modify|adjust|edit|fix"
    r"|improve|enhance|update|recolou?r|render|restyle)\b(?!-)", _FLAGS)

# Negatives. "no-parking sign" (hyphenated) is a thing in the picture, not a negation.
_NEGATIVE = re.compile(
    r"(?<![\w-])(?P<neg>no\s+longer|no|not|without|never|none|nor|neither|don['\u2019]?t|do\s+not|doesn['\u2019]?t"
    r"|does\s+not|isn['\u2019]?t|aren['\u2019]?t|wasn['\u2019]?t|weren['\u2019]?t|won['\u2019]?t|can['\u2019]?t"
    r"|cannot|shouldn['\u2019]?t|mustn['\u2019]?t|free\s+of|devoid\s+of|lacking|absent)(?![\w-])", _FLAGS)
# Quoted words are text in the picture (a sign, a title): never read as an instruction.
_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|\"[^\"]*\"|\u201c[^\u201d]*\u201d|\u2018[^\u2019]*\u2019")
_NEGATED_VERB = re.compile(r"^(?:do|does|is|are|was|were|wo|ca|should|must)(?:n['\u2019]?t|\s+not)$|^cannot$", _FLAGS)
_NEGATED_CLAUSE_END = re.compile(r"[,.;:!?]|\s(?:and|but|while|over|above|under|below|in|on|at|behind|near)\s",
                                 _FLAGS)


# --- small text helpers ----------------------------------------------------------------

def _article(phrase: str) -> str:
    return "an" if _VOWEL_SOUND.match(phrase.strip()) else "a"


def _strip_determiner(phrase: str) -> str:
    return re.sub(r"^" + _DETERMINER + r"\s+", "", phrase.strip(), flags=_FLAGS)


def _starts_with_determiner(phrase: str) -> bool:
    return re.match(_DETERMINER + r"\b", phrase.strip(), flags=_FLAGS) is not None


def _noun_phrase(phrase: str) -> str:
    """"purple sky" -> "a purple sky"; a phrase with its own determiner stays as it is."""
    phrase = phrase.strip()
    if _starts_with_determiner(phrase) or not phrase:
        return phrase
    if phrase.endswith("s") and not phrase.endswith("ss"):  # a plural: "wet streets"
        return phrase
    return f"{_article(phrase)} {phrase}"


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])\1+", r"\1", text)
    text = re.sub(r"^[,.;:!?\s]+|[,;:\s]+$", "", text)
    text = re.sub(r"^(?:please|and|then|also|just|now)\s+", "", text, flags=_FLAGS)
    # A dangling connective left where a clause was cut out: "a street with" -> "a street".
    text = re.sub(r"\s+(?:with|and|but|of|that|which|where|has|have|having|is|are|who)$", "", text, flags=_FLAGS)
    return text


def _splice(text: str, start: int, end: int, replacement: str) -> str:
    return _tidy(text[:start] + " " + replacement + " " + text[end:])


def _quote(text: str) -> str:
    return f"'{text}'"


# --- the rules -------------------------------------------------------------------------

def _change_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for m in _CHANGE_TO.finditer(text):
        x, y = m.group("x").strip(), m.group("y").strip()
        if m.group("prep").lower() == "into" or _starts_with_determiner(y):
            target = _noun_phrase(y)
        else:  # "to purple": an attribute of x
            target = _noun_phrase(f"{y} {_strip_determiner(x)}")
        found.append(Finding("change", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} is an instruction; describe the result",
                             _splice(text, m.start("verb"), m.end(), target)))
    for m in _REPLACE.finditer(text):
        found.append(Finding("change", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} is an instruction; describe what is there",
                             _splice(text, m.start("verb"), m.end(), _noun_phrase(m.group("y")))))
    for m in _MAKE.finditer(text):
        x, y = m.group("x").strip(), m.group("y").strip()
        if x.lower() in _PRONOUN_SUBJECTS:
            target = y if _starts_with_determiner(y) else _noun_phrase(f"{y} scene")
        else:
            target = _noun_phrase(f"{y} {_strip_determiner(x)}")
        found.append(Finding("change", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} is an instruction; describe the result",
                             _splice(text, m.start("verb"), m.end(), target)))
    for m in _SHOULD.finditer(text):
        target = _noun_phrase(f"{m.group('y').strip()} {_strip_determiner(m.group('x'))}")
        found.append(Finding("change", (m.start("x"), m.end()),
                             f"{_quote(m.group(0).strip())} asks for a change; state it as a fact",
                             _splice(text, m.start("x"), m.end(), target)))
    for m in _INSTEAD.finditer(text):
        rewritten = _splice(text, m.start(), m.end(), "")
        found.append(Finding("change", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} names what is being replaced, which brings it back",
                             rewritten or "describe only what is there"))
    return found


def _removal_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for m in _REMOVE.finditer(text):
        place = m.group("place")
        if place:
            suggestion = _splice(text, m.start("verb"), m.end(), f"an empty {_strip_determiner(place)}")
        else:
            rest = _splice(text, m.start("verb"), m.end(), "")
            example = "'an empty street', 'a clear blue sky'"
            suggestion = (f"describe what is there instead of {m.group('x').strip()}, e.g. {example}"
                          + (f", with {_quote(rest)}" if rest else ""))
        found.append(Finding("removal", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} names the thing to remove, which brings it back; "
                             "describe the frame without it",
                             suggestion))
    return found


def _addition_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for m in _ADD.finditer(text):
        x, place = m.group("x").strip(), m.group("place")
        subject = place.strip() if place else "the scene"
        found.append(Finding("addition", (m.start("verb"), m.end()),
                             f"{_quote(m.group(0).strip())} is an instruction; describe the result",
                             _splice(text, m.start("verb"), m.end(), f"{subject} with {x}")))
    return found


def _negative_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for m in _NEGATIVE.finditer(text):
        start = m.start("neg")
        end_match = _NEGATED_CLAUSE_END.search(text, m.end())
        end = end_match.start() if end_match else len(text)
        # "a street with no cars": the "with" only introduced what is negated.
        lead = re.search(r"\b(?:with|that\s+has|that\s+have|having|and)\s*$", text[:start], flags=_FLAGS)
        cut_start = lead.start() if lead else start
        rest = _splice(text, cut_start, end, "")
        negated = text[m.end():end].strip() or "it"
        word = m.group("neg").lower()
        owner = re.search(r"\b(?P<det>" + _DETERMINER + r")\s+(?P<noun>[\w-]+)\s*$", text[:cut_start], flags=_FLAGS)
        if _NEGATED_VERB.match(word):
            # "don't change the trees": what the prompt does not name is not asked for anyway.
            suggestion = rest or "describe only the frame as it should look; leave out what stays as it is"
        elif owner is not None and (lead is not None or word == "without"):
            # "a street with no cars" -> "an empty street": the thing that is there.
            emptied = _splice(text, owner.start(), end, f"an empty {owner.group('noun')}")
            suggestion = f"{emptied}, or describe what is there instead of {negated}"
        elif rest:
            suggestion = f"{rest}, and describe what is there instead of {negated}"
        else:
            suggestion = f"describe what is there instead of {negated}, e.g. 'an empty street', 'a clear sky'"
        found.append(Finding("negative", (start, m.end("neg")),
                             f"{_quote(m.group('neg'))}: image models do not understand negation; "
                             f"{_quote(text[start:end].strip())} tends to add {negated}",
                             suggestion))
    return found


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _inside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in spans)


def lint_prompt(text: str) -> list[Finding]:
    """Every problem of one keyframe prompt, in the order they appear.

    An instruction found by a specific rule ("change X to Y") is reported once, not
    again by the generic "starts with an instruction verb" rule.
    """
    specific = _change_findings(text) + _removal_findings(text) + _addition_findings(text)
    # Several specific rules can read the same words ("change the sky to purple" is not
    # also a "make"); keep the first, longest reading of each span.
    specific.sort(key=lambda f: (f.span[0], -(f.span[1] - f.span[0])))
    kept: list[Finding] = []
    for finding in specific:
        if not _overlaps(finding.span, [f.span for f in kept]):
            kept.append(finding)
    for m in _BARE_INSTRUCTION.finditer(text):
        span = (m.start("verb"), m.end("verb"))
        if not _overlaps(span, [f.span for f in kept]):
            kept.append(Finding("change", span,
                                f"{_quote(m.group('verb'))} is an instruction; describe the frame as it should look",
                                "describe the result, e.g. 'a purple sky over the mountain landscape'"))
    # Negatives inside an already-reported instruction ("remove the car, not the bike")
    # are still their own problem: negatives are always reported.
    kept += _negative_findings(text)
    quoted = [m.span() for m in _QUOTED.finditer(text)]
    return sorted((f for f in kept if not _inside(f.span, quoted)), key=lambda f: f.span)


def rewrite(text: str, max_passes: int = 5) -> str:
    """``text`` with each finding's rewrite applied in turn (for a panel's "fix" button), or
    ``text`` itself when a finding has only advice ("describe what is there instead ...")
    or the result is still not clean."""
    current = text
    for _ in range(max_passes):
        findings = lint_prompt(current)
        if not findings:
            return current
        suggestion = findings[0].suggestion
        if suggestion.lower().startswith("describe") or ", and describe" in suggestion:
            return text
        current = suggestion.split(", or describe")[0]  # "an empty street, or describe ..." -> the rewrite
    return current if not lint_prompt(current) else text

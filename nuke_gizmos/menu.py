"""Retake's Nuke GUI start-up: the node in the Nodes toolbar (and so in the Tab menu) and the
docked panel. Runs only in GUI sessions, after init.py."""
import nuke


def _register() -> None:
    toolbar = nuke.toolbar("Nodes")
    toolbar.addMenu("Retake").addCommand("Retake", "nuke.createNode('Retake')")
    nuke.menu("Nuke").addMenu("Retake").addCommand(
        "Retake panel", "import plugin.hosts.nuke_panel\nplugin.hosts.nuke_panel.show_for(None)")
    import nukescripts

    # The widget is named by a string that Nuke evaluates when the panel is opened, so
    # PySide6 is imported only then (Pane menu > Retake).
    nukescripts.panels.registerWidgetAsPanel("plugin.hosts.nuke_panel.RetakeNukePanel", "Retake",
                                             "dev.retake.panel")


_register()

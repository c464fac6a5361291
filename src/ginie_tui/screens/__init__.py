"""The console's screens: one tab per group of panels, and the modal dialogs."""

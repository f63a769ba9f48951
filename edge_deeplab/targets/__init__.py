"""Remote targets: run a subcommand on a device over SSH and bring its JSON back."""

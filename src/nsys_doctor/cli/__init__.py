"""Command-line interface: one module per subcommand, thin (parse, call, render, exit code)."""

from hermes_cli.cli import main

main()

from hermes_cli.cli.main import main

main()

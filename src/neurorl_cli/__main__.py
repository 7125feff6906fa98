from neurorl_cli.cli.app import main

main()

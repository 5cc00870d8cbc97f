from apishield.cli.main import main

main()

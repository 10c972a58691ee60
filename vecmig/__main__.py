from vecmig.cli import main

main()

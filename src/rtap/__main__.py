from rtap.cli import main

main()

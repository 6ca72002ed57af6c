from sidestep.cli import main

main()

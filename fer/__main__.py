from fer.cli import main

main()

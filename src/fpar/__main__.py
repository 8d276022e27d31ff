from fpar.cli import program

program()

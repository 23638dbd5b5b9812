from mnemo.cli.main import app

app()

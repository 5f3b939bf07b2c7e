"""Record and replay at the HTTP level: the recordings and their server, and the routes a browser tab
answers itself."""

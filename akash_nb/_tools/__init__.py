"""The maintainer tools behind `akash-nb`: running and refreshing lessons, the docs, the lesson template,
and the nbval report plugin."""

"""The embedded engine and its servers: which llama.cpp program runs, the model file, llama-server as a
process, the notebooks' shared embedded server, and the class server with its `join`."""

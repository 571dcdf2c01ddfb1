"""Hosting the app under test: starting it (in a thread, in a child process, in a box), keeping
its limits, and the loopback servers both the app and the fake provider run on."""

"""Local stand-ins for services outside our control, speaking their real wire protocols."""

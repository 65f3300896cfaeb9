"""Audio: decoding to mono float32, the shared log-mel front end, and text to speech."""

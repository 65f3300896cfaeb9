"""Audio: decoding any file to mono float32, the shared log-mel front end, text to speech, feature caching."""

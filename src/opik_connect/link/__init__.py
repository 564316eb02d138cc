"""The link between daemon and platform: pairing and signing, frames, the session core."""

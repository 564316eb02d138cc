"""The platform side: the websocket server daemons dial, and Ollie, the loop that proposes fixes."""

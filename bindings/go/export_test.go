package latchkey

// LiveHandles is the number of cgo handles the library has not yet given
// back (through the user_free callback).
func LiveHandles() int64 { return liveHandles.Load() }

// LinkMode is "static" or "shared".
const LinkMode = linkMode

// StallClient holds the client's registry lock until the returned function
// is called: the Go side cannot take lost-lease reports meanwhile (as when
// the Go scheduler or a stop-the-world pause keeps it from running).
func StallClient(c *Client) (resume func()) {
	c.st.mu.Lock()
	return c.st.mu.Unlock
}

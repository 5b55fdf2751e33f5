package latchkey

// LiveHandles is the number of cgo handles the library has not yet given
// back (through the user_free callback).
func LiveHandles() int64 { return liveHandles.Load() }

// LinkMode is "static" or "shared".
const LinkMode = linkMode

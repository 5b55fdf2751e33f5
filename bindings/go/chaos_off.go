//go:build !latchkey_chaos

package latchkey

// chaosVariant says whether a broken variant of the binding is on: never
// without the build tag latchkey_chaos (see chaos_on.go).
func chaosVariant(string) bool { return false }

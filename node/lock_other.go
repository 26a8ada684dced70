//go:build !unix

package node

// lockHome does nothing where flock is missing; badger's own directory
// lock still stops a second daemon (Open translates its error).
func lockHome(home string) (release func(), err error) { return func() {}, nil }

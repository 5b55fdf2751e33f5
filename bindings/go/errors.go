package latchkey

import (
	"context"
	"errors"
	"fmt"
)

// Status is the library's status code (latchkey_status in latchkey.h). The
// numbers are fixed by the C ABI and never reused.
type Status int32

// The statuses of the C ABI.
const (
	StatusOK              Status = 0
	StatusInvalidArgument Status = 1
	StatusTimeout         Status = 2
	StatusNotHeld         Status = 3
	StatusLost            Status = 4
	StatusCancelled       Status = 5
	StatusConnection      Status = 6
	StatusServer          Status = 7
	StatusPanic           Status = 8
	StatusNoQuorum        Status = 9
	StatusAuth            Status = 10
	StatusClosed          Status = 11
)

var statusNames = [...]string{
	StatusOK:              "ok",
	StatusInvalidArgument: "invalid argument",
	StatusTimeout:         "timeout",
	StatusNotHeld:         "not held",
	StatusLost:            "lost",
	StatusCancelled:       "cancelled",
	StatusConnection:      "connection",
	StatusServer:          "server",
	StatusPanic:           "panic",
	StatusNoQuorum:        "no quorum",
	StatusAuth:            "authentication failed",
	StatusClosed:          "closed",
}

// String is the status's short English name, as latchkey_status_name gives it.
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("unknown status %d", int32(s))
}

// Sentinel errors, one per failure status, for errors.Is. Every error the
// package returns is an *Error whose Is method matches the sentinel of its
// status.
var (
	// ErrInvalidArgument: an unusable argument (an empty name, a ttl out of
	// range, a bad URL, ...).
	ErrInvalidArgument = errors.New("latchkey: invalid argument")
	// ErrTimeout: the lock was still held by another owner at the deadline
	// (including a context's deadline). A Redis that does not answer within
	// the command timeout is ErrConnection.
	ErrTimeout = errors.New("latchkey: timeout")
	// ErrNotHeld: Unlock or Extend found that this owner does not hold the
	// lock (it expired, was force-unlocked, or was never locked).
	ErrNotHeld = errors.New("latchkey: not held")
	// ErrLost: the lease was lost while it was supposed to be held.
	ErrLost = errors.New("latchkey: lost")
	// ErrCancelled: a waiting Lock was cancelled through its context.
	ErrCancelled = errors.New("latchkey: cancelled")
	// ErrConnection: Redis could not be reached, the connection broke, or
	// Redis did not answer within the command timeout.
	ErrConnection = errors.New("latchkey: connection")
	// ErrServer: Redis answered with an error.
	ErrServer = errors.New("latchkey: server")
	// ErrPanic: a bug inside the library was caught at the C boundary.
	ErrPanic = errors.New("latchkey: panic")
	// ErrNoQuorum: Redlock could not reach a quorum of masters, or too few of
	// them count yet, being younger than the restart delay (the message says
	// so; see WithRedlockRestartDelay).
	ErrNoQuorum = errors.New("latchkey: no quorum")
	// ErrAuth: Redis refused the credentials (a wrong user name or
	// password, or none given to a server that requires one); retrying will
	// not help.
	ErrAuth = errors.New("latchkey: authentication failed")
)

// ErrClosed: the Client or Mutex was closed (by its Close, or by its
// Client's Close). A wait ended by the library's close has StatusClosed;
// a call refused by the binding on a closed Client or Mutex may have
// Status 0.
var ErrClosed = errors.New("latchkey: closed")

var sentinels = [...]error{
	StatusInvalidArgument: ErrInvalidArgument,
	StatusTimeout:         ErrTimeout,
	StatusNotHeld:         ErrNotHeld,
	StatusLost:            ErrLost,
	StatusCancelled:       ErrCancelled,
	StatusConnection:      ErrConnection,
	StatusServer:          ErrServer,
	StatusPanic:           ErrPanic,
	StatusNoQuorum:        ErrNoQuorum,
	StatusAuth:            ErrAuth,
	StatusClosed:          ErrClosed,
}

// Error is the error of a failed call: the library's status and message
// (both from the same C call). A Lock ended by its context also wraps the
// context's error, so errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded) holds as well as
// errors.Is(err, ErrCancelled) or errors.Is(err, ErrTimeout).
type Error struct {
	// Status is the library's status code of the failure; 0 (StatusOK) for
	// ErrClosed, which has no C status.
	Status Status
	// Message is the library's message: what failed and why, never a
	// password.
	Message string
	cause   error
	// The sentinel of an error that has no C status (ErrClosed).
	sentinel error
}

// Error is "latchkey: " followed by the Message.
func (e *Error) Error() string {
	return "latchkey: " + e.Message
}

// Is matches the sentinel error of e's status.
func (e *Error) Is(target error) bool {
	if e.sentinel != nil {
		return target == e.sentinel
	}
	if e.Status > 0 && int(e.Status) < len(sentinels) {
		return target == sentinels[e.Status]
	}
	return false
}

// Unwrap returns the context error of a Lock ended by its context, or nil.
func (e *Error) Unwrap() error {
	return e.cause
}

func invalidArgument(msg string) error {
	return &Error{Status: StatusInvalidArgument, Message: msg}
}

// contextError is the error of a Lock (or a Semaphore's Acquire) ended by
// ctx (or by ctx's deadline reached in the library just before ctx's own
// timer fired); what is "lock 'x'" or "semaphore 'x'".
func contextError(ctx context.Context, what string, cause error) error {
	status := StatusCancelled
	if errors.Is(cause, context.DeadlineExceeded) {
		status = StatusTimeout
	}
	msg := fmt.Sprintf("%s not acquired: %v", what, cause)
	if c := context.Cause(ctx); c != nil && c != cause {
		msg += " (" + c.Error() + ")"
	}
	return &Error{Status: status, Message: msg, cause: cause}
}

package latchkey

/*
#include <stdlib.h>
#include <string.h>
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// Client is a connection to Redis (a pool of connections, a release listener
// and a renewal thread, all inside the library) shared by any number of
// Mutexes. It is safe for concurrent use by multiple goroutines: make one
// per deployment and share it.
//
// Close ends it: it interrupts every Lock or Acquire still waiting, releases
// every lock still held through it (their Lost channels close), closes its
// Mutexes, and frees it. Everything used afterwards fails with ErrClosed.
//
// A Client keeps every live hold (acquired and not yet unlocked, lost or
// closed) reachable, so a lock is never released behind its holder's back:
// a Client or Mutex the program no longer references is freed by the
// garbage collector only as far as it holds nothing. See the package
// documentation.
type Client struct {
	st      *clientState
	cleanup runtime.Cleanup
}

// Option configures Open, OpenRedlock, OpenSentinel and OpenCluster. Values
// are checked by the library when the client is opened.
type Option func(*clientConfig)

type clientConfig struct {
	connectTimeout, commandTimeout *time.Duration
	prefix                         *string
	poolSize                       *int
	spin                           *time.Duration
	replicas                       int
	replicaTimeout                 *time.Duration
	masterPassword                 *string
	masterDB                       *int64
	restartDelay                   *time.Duration
	tlsCAFile                      *string
	tlsClientCert, tlsClientKey    *string
	tlsServerName                  *string
	tlsInsecureSkipVerify          bool
}

// WithConnectTimeout sets the time allowed to connect and handshake
// (default 2 s; 1 ms to 24 h).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.connectTimeout = &d }
}

// WithCommandTimeout sets the time allowed for Redis to answer one command
// (default 2 s; 1 ms to 24 h). A stopped server makes calls fail with
// ErrConnection after this long instead of hanging.
func WithCommandTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.commandTimeout = &d }
}

// WithPrefix sets the prefix of every Redis key (default "latchkey"; 1 to 256
// bytes, no '{' or '}').
func WithPrefix(prefix string) Option {
	return func(c *clientConfig) { c.prefix = &prefix }
}

// WithPoolSize sets how many idle connections the pool keeps (default 8;
// 1 to 1024). More goroutines may use the client at once; extra connections
// are closed after use.
func WithPoolSize(n int) Option {
	return func(c *clientConfig) { c.poolSize = &n }
}

// WithSpin sets how long a thread waiting for a reply from Redis keeps
// asking the socket before it sleeps until the reply (default
// LATCHKEY_SPIN_US microseconds from the environment, else 0, which turns
// spinning off;
// at most 10 ms, counted in whole microseconds, rounded up). A negative or
// longer limit makes Open fail with ErrInvalidArgument. A thread woken by
// the reply costs a scheduler wake-up, which on a loaded virtual machine can cost
// more than the round trip; spinning saves it at the price of the CPU spent
// asking. Each server's connections spin only while its replies come within
// the limit, and at most one fewer threads of the process than it has cores
// spin at once.
func WithSpin(d time.Duration) Option {
	return func(c *clientConfig) { c.spin = &d }
}

// WithWaitForReplicas makes every acquire wait until `replicas` replicas have
// the lock (Redis WAIT), at most `timeout`; if fewer confirm, the lock is
// given back and Lock fails with ErrTimeout. For a single server, Sentinel
// or Cluster, not Redlock. On a Cluster the WAIT goes to the master serving
// the lock's slot and counts that master's replicas: `replicas` is per master.
func WithWaitForReplicas(replicas int, timeout time.Duration) Option {
	return func(c *clientConfig) { c.replicas, c.replicaTimeout = replicas, &timeout }
}

// WithMasterPassword sets the password of the master found through Sentinel.
// It never appears in error messages.
func WithMasterPassword(password string) Option {
	return func(c *clientConfig) { c.masterPassword = &password }
}

// WithMasterDB sets the database number on the master found through Sentinel
// (default 0).
func WithMasterDB(db int64) Option {
	return func(c *clientConfig) { c.masterDB = &db }
}

// WithRedlockRestartDelay (Redlock only) sets how long a master stays out of
// every quorum after it (re)started: one that restarts without its keys
// would grant held locks again (the Redlock paper's delayed restart). By
// default it is the largest ttl the client has used, and a master that
// refuses INFO counts as just restarted; so for one ttl after most masters
// start, no lock is granted: Acquire waits, and fails with ErrNoQuorum
// (saying why) when it stops waiting, as TryAcquire does. When clients use
// different ttls, set it on every client to the largest ttl any uses. 0
// lets every master count at once (only for masters that keep their keys
// across restarts, or whose restarts are delayed by their operators).
// Other deployments refuse it.
func WithRedlockRestartDelay(d time.Duration) Option {
	return func(c *clientConfig) { c.restartDelay = &d }
}

// WithTLSCAFile (rediss:// URLs) trusts the CA certificates in this PEM file
// instead of the system's CA store. The file is read when the client is
// opened: a missing or unreadable file, or one without a certificate, makes
// Open fail with ErrInvalidArgument naming it. Every TLS option with no
// rediss:// URL makes Open fail the same way. A server whose certificate no
// trusted CA signed is refused at the first command with ErrConnection,
// whose message says so (and names the option as the library's
// tls_ca_file).
func WithTLSCAFile(path string) Option {
	return func(c *clientConfig) { c.tlsCAFile = &path }
}

// WithTLSClientCert (rediss:// URLs) shows this certificate (a PEM chain)
// and private key (PEM) to a server that asks for one (mutual TLS, Redis's
// tls-auth-clients yes). The files are read when the client is opened: a
// missing file, or a key that does not match the certificate, makes Open
// fail with ErrInvalidArgument naming it.
func WithTLSClientCert(certFile, keyFile string) Option {
	return func(c *clientConfig) { c.tlsClientCert, c.tlsClientKey = &certFile, &keyFile }
}

// WithTLSServerName (rediss:// URLs) sets the name the server's certificate
// must carry, when it differs from the URL's host (the URL names an IP
// address, or a tunnel). A certificate for another name is refused at the
// first command with ErrConnection; a name that is not a valid TLS server
// name makes Open fail with ErrInvalidArgument.
func WithTLSServerName(name string) Option {
	return func(c *clientConfig) { c.tlsServerName = &name }
}

// WithTLSInsecureSkipVerify (rediss:// URLs) ACCEPTS ANY SERVER CERTIFICATE:
// the connection is encrypted, but to whoever answers, so anyone on the path
// can pose as the server. For tests against a throwaway server only.
func WithTLSInsecureSkipVerify() Option {
	return func(c *clientConfig) { c.tlsInsecureSkipVerify = true }
}

// clientOptions builds a latchkey_client_options from opts (nil when no
// option is given). The caller frees it with latchkey_client_options_free.
func clientOptions(opts []Option) (*C.latchkey_client_options, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	var cfg clientConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var o *C.latchkey_client_options
	var cerr *C.latchkey_error
	if st := C.latchkey_client_options_new(&o, &cerr); st != C.LATCHKEY_OK {
		return nil, takeError(st, cerr)
	}
	fail := func(err error) (*C.latchkey_client_options, error) {
		C.latchkey_client_options_free(o)
		return nil, err
	}
	check := func(st C.latchkey_status) error {
		if st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		return nil
	}
	if cfg.connectTimeout != nil {
		ms, err := millis("connect timeout", *cfg.connectTimeout)
		if err == nil {
			err = check(C.latchkey_client_options_set_connect_timeout_ms(o, ms, &cerr))
		}
		if err != nil {
			return fail(err)
		}
	}
	if cfg.commandTimeout != nil {
		ms, err := millis("command timeout", *cfg.commandTimeout)
		if err == nil {
			err = check(C.latchkey_client_options_set_command_timeout_ms(o, ms, &cerr))
		}
		if err != nil {
			return fail(err)
		}
	}
	if cfg.prefix != nil {
		p, err := cString("prefix", *cfg.prefix)
		if err != nil {
			return fail(err)
		}
		err = check(C.latchkey_client_options_set_prefix(o, p, &cerr))
		freeCString(p)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.poolSize != nil {
		if *cfg.poolSize < 0 {
			return fail(invalidArgument(fmt.Sprintf("pool size must not be negative, got %d", *cfg.poolSize)))
		}
		if err := check(C.latchkey_client_options_set_pool_size(o, C.size_t(*cfg.poolSize), &cerr)); err != nil {
			return fail(err)
		}
	}
	if cfg.spin != nil {
		if *cfg.spin < 0 {
			return fail(invalidArgument(fmt.Sprintf("spin limit must not be negative, got %v", *cfg.spin)))
		}
		// Whole microseconds, rounded up: a limit just above 10 ms is
		// refused by the library rather than cut to 10 ms.
		us := *cfg.spin / time.Microsecond
		if *cfg.spin%time.Microsecond != 0 {
			us++
		}
		if err := check(C.latchkey_client_options_set_spin_us(o, C.uint64_t(us), &cerr)); err != nil {
			return fail(err)
		}
	}
	if cfg.replicaTimeout != nil {
		if cfg.replicas < 0 {
			return fail(invalidArgument(fmt.Sprintf("replica count must not be negative, got %d", cfg.replicas)))
		}
		ms, err := millis("replica wait timeout", *cfg.replicaTimeout)
		if err == nil {
			err = check(C.latchkey_client_options_set_wait_for_replicas(o, C.size_t(cfg.replicas), ms, &cerr))
		}
		if err != nil {
			return fail(err)
		}
	}
	if cfg.masterPassword != nil {
		p, err := cString("master password", *cfg.masterPassword)
		if err != nil {
			return fail(err)
		}
		err = check(C.latchkey_client_options_set_master_password(o, p, &cerr))
		C.memset(unsafe.Pointer(p), 0, C.strlen(p))
		freeCString(p)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.masterDB != nil {
		if err := check(C.latchkey_client_options_set_master_db(o, C.int64_t(*cfg.masterDB), &cerr)); err != nil {
			return fail(err)
		}
	}
	if cfg.restartDelay != nil {
		ms, err := millis("Redlock restart delay", *cfg.restartDelay)
		if err == nil {
			err = check(C.latchkey_client_options_set_redlock_restart_delay_ms(o, ms, &cerr))
		}
		if err != nil {
			return fail(err)
		}
	}
	// TLS: only translated; the library reads and checks the files, and
	// the name, when the client is opened.
	if cfg.tlsCAFile != nil {
		p, err := cString("TLS CA file", *cfg.tlsCAFile)
		if err != nil {
			return fail(err)
		}
		err = check(C.latchkey_client_options_set_tls_ca_file(o, p, &cerr))
		freeCString(p)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.tlsClientCert != nil {
		cert, err := cString("TLS client certificate file", *cfg.tlsClientCert)
		if err != nil {
			return fail(err)
		}
		key, err := cString("TLS client key file", *cfg.tlsClientKey)
		if err != nil {
			freeCString(cert)
			return fail(err)
		}
		err = check(C.latchkey_client_options_set_tls_client_cert(o, cert, key, &cerr))
		freeCString(cert)
		freeCString(key)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.tlsServerName != nil {
		p, err := cString("TLS server name", *cfg.tlsServerName)
		if err != nil {
			return fail(err)
		}
		err = check(C.latchkey_client_options_set_tls_server_name(o, p, &cerr))
		freeCString(p)
		if err != nil {
			return fail(err)
		}
	}
	if cfg.tlsInsecureSkipVerify {
		if err := check(C.latchkey_client_options_set_tls_insecure_skip_verify(o, C.bool(true), &cerr)); err != nil {
			return fail(err)
		}
	}
	return o, nil
}

// cStrings copies urls to a C array of C strings; free it with the returned
// function.
func cStrings(what string, urls []string) (**C.char, func(), error) {
	if len(urls) == 0 {
		return nil, func() {}, nil
	}
	size := C.size_t(len(urls)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
	arr := unsafe.Slice((**C.char)(C.calloc(1, size)), len(urls))
	free := func() {
		for _, p := range arr {
			if p != nil {
				freeCString(p)
			}
		}
		C.free(unsafe.Pointer(&arr[0]))
	}
	for i, u := range urls {
		p, err := cString(what, u)
		if err != nil {
			free()
			return nil, nil, err
		}
		arr[i] = p
	}
	return &arr[0], free, nil
}

// open runs one of the latchkey_client_open* functions with the options.
func open(opts []Option, call func(o *C.latchkey_client_options, out **C.latchkey_client, cerr **C.latchkey_error) C.latchkey_status) (*Client, error) {
	o, err := clientOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.latchkey_client_options_free(o)
	var p *C.latchkey_client
	var cerr *C.latchkey_error
	if st := call(o, &p, &cerr); st != C.LATCHKEY_OK {
		return nil, takeError(st, cerr)
	}
	st := newClientState(p)
	c := &Client{st: st}
	// A forgotten Close: free what holds nothing (the C client; live holds
	// keep working and renewing until they are unlocked or lost).
	c.cleanup = runtime.AddCleanup(c, func(st *clientState) { st.abandon() }, st)
	return c, nil
}

// Open makes a client for the Redis at url
// (redis://[user:password@]host[:port][/db] or unix:///path). No connection
// is made yet: the first command connects.
func Open(url string, opts ...Option) (*Client, error) {
	curl, err := cString("url", url)
	if err != nil {
		return nil, err
	}
	defer freeCString(curl)
	return open(opts, func(o *C.latchkey_client_options, out **C.latchkey_client, cerr **C.latchkey_error) C.latchkey_status {
		return C.latchkey_client_open(curl, o, out, cerr)
	})
}

// OpenRedlock makes a Redlock client over independent masters (an odd
// number, at least 3). A lock is held when a quorum (N/2+1) granted it, and
// only within ttl - elapsed - drift.
func OpenRedlock(urls []string, opts ...Option) (*Client, error) {
	arr, free, err := cStrings("url", urls)
	if err != nil {
		return nil, err
	}
	defer free()
	return open(opts, func(o *C.latchkey_client_options, out **C.latchkey_client, cerr **C.latchkey_error) C.latchkey_status {
		return C.latchkey_client_open_redlock(arr, C.size_t(len(urls)), o, out, cerr)
	})
}

// OpenSentinel makes a client that finds the master named masterName through
// Redis Sentinel and follows its failovers.
func OpenSentinel(sentinels []string, masterName string, opts ...Option) (*Client, error) {
	arr, free, err := cStrings("sentinel url", sentinels)
	if err != nil {
		return nil, err
	}
	defer free()
	cname, err := cString("master name", masterName)
	if err != nil {
		return nil, err
	}
	defer freeCString(cname)
	return open(opts, func(o *C.latchkey_client_options, out **C.latchkey_client, cerr **C.latchkey_error) C.latchkey_status {
		return C.latchkey_client_open_sentinel(arr, C.size_t(len(sentinels)), cname, o, out, cerr)
	})
}

// OpenCluster makes a client for a Redis Cluster, given some of its nodes.
func OpenCluster(seeds []string, opts ...Option) (*Client, error) {
	arr, free, err := cStrings("seed url", seeds)
	if err != nil {
		return nil, err
	}
	defer free()
	return open(opts, func(o *C.latchkey_client_options, out **C.latchkey_client, cerr **C.latchkey_error) C.latchkey_status {
		return C.latchkey_client_open_cluster(arr, C.size_t(len(seeds)), o, out, cerr)
	})
}

// use runs f with the live C client, or fails once the client is closed.
func (c *Client) use(f func(p *C.latchkey_client) error) error {
	if c == nil || c.st == nil {
		return invalidArgument("nil Client")
	}
	st := c.st
	if !st.rc.acquire() {
		return st.closedError()
	}
	defer st.rc.release()
	return f(st.p)
}

// Close ends the client the same way in every language (the library's
// latchkey_client_close): the waits in progress on it fail promptly with
// ErrClosed, every lock still held through it is released in Redis at once
// (in parallel, each release bounded by the command timeout; a close is an
// ending, not a loss: each hold's Lost channel closes and Check says
// ErrClosed, never ErrLost), then its Mutexes are closed and the client is
// freed. It returns an error only when Redis did not confirm a release (the
// library gives that hold back in the background once Redis answers).
// Closing twice is harmless.
func (c *Client) Close() error {
	if c == nil || c.st == nil {
		return nil
	}
	c.cleanup.Stop()
	return c.st.close()
}

// Prefix is the client's key prefix.
func (c *Client) Prefix() (string, error) {
	var prefix string
	err := c.use(func(p *C.latchkey_client) error {
		var out *C.char
		var cerr *C.latchkey_error
		if st := C.latchkey_client_prefix(p, &out, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		prefix = C.GoString(out)
		return nil
	})
	return prefix, err
}

// withName runs f with the live client and name as a C string.
func (c *Client) withName(what, name string, f func(p *C.latchkey_client, cname *C.char) error) error {
	cname, err := cString(what, name)
	if err != nil {
		return err
	}
	defer freeCString(cname)
	return c.use(func(p *C.latchkey_client) error { return f(p, cname) })
}

// LockInfo is the state of a held lock in Redis, from Client.Inspect.
type LockInfo struct {
	// Owner is the holder's owner token (32 hex digits); Hold.Token of
	// the holder.
	Owner string
	// FencingToken is the fencing token issued to the holder.
	FencingToken uint64
	// TTL is the time until the lease expires in Redis; negative if the
	// key has no expiry.
	TTL time.Duration
	// Reentrant tells whether it is a reentrant lock.
	Reentrant bool
	// HoldCount is the number of nested holds (1 for a plain lock).
	HoldCount uint64
	// Queue lists the waiters queued for the lock in the order a release
	// hands it to them (the earliest to queue first); entries
	// that ran out (their waiter died) are left out. At most
	// MaxReportedWaiters; QueueLen counts them all. Always empty for
	// Redlock, whose waiters do not queue.
	Queue []QueuedWaiter
	// QueueLen is the number of live queued waiters: more than len(Queue)
	// when the list was cut.
	QueueLen uint64
}

// QueuedWaiter is one waiting acquisition in a lock's queue, from
// LockInfo.Queue.
type QueuedWaiter struct {
	// ID is the entry's id: "w:" and a random id, one per waiting
	// acquisition (not the owner token it gets when it takes the lock).
	ID string
	// ExpiresIn is the time until the entry runs out unless its waiter
	// asks again (a live waiter asks at least every 5 s, renewing it to
	// 15 s).
	ExpiresIn time.Duration
}

// MaxReportedWaiters is the most waiters Client.Inspect lists in
// LockInfo.Queue.
const MaxReportedWaiters = 1000

// Inspect says who holds the lock name, and who waits for it (Queue, in
// the order a release hands the lock on): nil (and no error) when nobody
// holds it, even in the rare moment a release has handed it to a queued
// waiter that has not taken it yet. One round trip, one snapshot.
func (c *Client) Inspect(name string) (*LockInfo, error) {
	var info *LockInfo
	err := c.withName("name", name, func(p *C.latchkey_client, cname *C.char) error {
		var ci C.latchkey_lock_info
		var arr *C.latchkey_queued_waiter
		var n C.size_t
		var total C.uint64_t
		var cerr *C.latchkey_error
		if st := C.latchkey_client_inspect_queue(p, cname, &ci, &arr, &n, &total, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		defer C.latchkey_queued_waiters_free(arr, n)
		if !bool(ci.locked) {
			return nil
		}
		ttl := time.Duration(-1)
		if ci.ttl_ms >= 0 {
			ttl = time.Duration(ci.ttl_ms) * time.Millisecond
		}
		info = &LockInfo{
			Owner:        C.GoString(&ci.owner_token[0]),
			FencingToken: uint64(ci.fencing_token),
			TTL:          ttl,
			Reentrant:    bool(ci.reentrant),
			HoldCount:    uint64(ci.hold_count),
			QueueLen:     uint64(total),
		}
		if n > 0 {
			info.Queue = make([]QueuedWaiter, 0, int(n))
			for _, w := range unsafe.Slice(arr, int(n)) {
				info.Queue = append(info.Queue, QueuedWaiter{
					ID:        C.GoString(w.id),
					ExpiresIn: time.Duration(w.expires_in_ms) * time.Millisecond,
				})
			}
		}
		return nil
	})
	return info, err
}

// IsLocked tells whether anyone holds the lock name.
func (c *Client) IsLocked(name string) (bool, error) {
	var locked C.bool
	err := c.withName("name", name, func(p *C.latchkey_client, cname *C.char) error {
		var cerr *C.latchkey_error
		if st := C.latchkey_client_is_locked(p, cname, &locked, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		return nil
	})
	return bool(locked), err
}

// ForceUnlock is the operator's escape hatch: it deletes the lock name
// whoever holds it and wakes its waiters, and tells whether a lock was
// deleted. The holder finds out at its next renewal (its Lost channel
// closes).
func (c *Client) ForceUnlock(name string) (bool, error) {
	var deleted C.bool
	err := c.withName("name", name, func(p *C.latchkey_client, cname *C.char) error {
		var cerr *C.latchkey_error
		if st := C.latchkey_client_force_unlock(p, cname, &deleted, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		return nil
	})
	return bool(deleted), err
}

// MasterState is one Redlock master's view of a lock, from
// Client.InspectMasters.
type MasterState struct {
	// Server names the master ("redis at host:port").
	Server string
	// Holder is the owner token this master holds, or "" if none.
	Holder string
	// FencingToken is the holder's fencing token on this master, 0 if it
	// knows none.
	FencingToken uint64
	// TTL is the time until the key expires on this master; negative if
	// it has no expiry or the master did not say.
	TTL time.Duration
	// Err is why this master did not answer, or "" if it did.
	Err string
}

// InspectMasters gives each Redlock master's view of the lock name. A client
// for one server (or Sentinel, Cluster), or a lock nobody holds, gives none.
func (c *Client) InspectMasters(name string) ([]MasterState, error) {
	var states []MasterState
	err := c.withName("name", name, func(p *C.latchkey_client, cname *C.char) error {
		var arr *C.latchkey_master_state
		var n C.size_t
		var cerr *C.latchkey_error
		if st := C.latchkey_client_inspect_masters(p, cname, &arr, &n, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		defer C.latchkey_master_states_free(arr, n)
		if n == 0 {
			return nil
		}
		for _, m := range unsafe.Slice(arr, int(n)) {
			s := MasterState{Server: C.GoString(m.server), TTL: -1}
			if m.holder != nil {
				s.Holder = C.GoString(m.holder)
			}
			if bool(m.has_fencing_token) {
				s.FencingToken = uint64(m.fencing_token)
			}
			if m.ttl_ms >= 0 {
				s.TTL = time.Duration(m.ttl_ms) * time.Millisecond
			}
			if m.error != nil {
				s.Err = C.GoString(m.error)
			}
			states = append(states, s)
		}
		return nil
	})
	return states, err
}

// FencedWrite writes value to the Redis resource only if fencingToken is at
// least the highest token the resource has accepted, so a holder that was
// paused past its lease (and has an older token) is refused. It reports
// whether the value was written and the highest token accepted so far; a
// refusal is not an error.
func (c *Client) FencedWrite(resource string, fencingToken uint64, value []byte) (bool, uint64, error) {
	var written C.bool
	var highest C.uint64_t
	err := c.withName("resource", resource, func(p *C.latchkey_client, cres *C.char) error {
		var cerr *C.latchkey_error
		var ptr *C.uint8_t
		if len(value) > 0 {
			ptr = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(value)))
		}
		st := C.latchkey_client_fenced_write(p, cres, C.uint64_t(fencingToken), ptr, C.size_t(len(value)), &written, &highest, &cerr)
		if st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		return nil
	})
	return bool(written), uint64(highest), err
}

// FencedRead reads a resource written by FencedWrite: its value and the
// fencing token that wrote it, and whether it exists.
func (c *Client) FencedRead(resource string) (value []byte, fencingToken uint64, found bool, err error) {
	err = c.withName("resource", resource, func(p *C.latchkey_client, cres *C.char) error {
		var cfound C.bool
		var token C.uint64_t
		var ptr *C.uint8_t
		var n C.size_t
		var cerr *C.latchkey_error
		if st := C.latchkey_client_fenced_read(p, cres, &cfound, &token, &ptr, &n, &cerr); st != C.LATCHKEY_OK {
			return takeError(st, cerr)
		}
		defer C.latchkey_bytes_free(ptr, n)
		found, fencingToken = bool(cfound), uint64(token)
		if found {
			value = append([]byte{}, unsafe.Slice((*byte)(unsafe.Pointer(ptr)), int(n))...)
		}
		return nil
	})
	return value, fencingToken, found, err
}

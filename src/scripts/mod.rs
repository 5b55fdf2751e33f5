//! The Lua scripts, one per file, compiled into the library.
//!
//! Every script touches only keys of one lock (which share a hash tag), gets
//! names only through KEYS and ARGV, and is sent with EVALSHA; the backend
//! loads it again when Redis answers NOSCRIPT (after a restart or a
//! `SCRIPT FLUSH`).

use std::sync::OnceLock;

/// One Lua script with its SHA1, ready for EVALSHA.
pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    pub(crate) script: redis::Script,
    /// Whether running it twice has the effect and reply of running it once
    /// (given the same arguments), so that a call whose outcome is unknown
    /// (timeout, dropped connection) may be sent again. A script that is
    /// not is never re-sent: its effect is reconciled instead.
    pub(crate) resend_safe: bool,
}

mod source;

macro_rules! script {
    ($fn_name:ident, $file:literal, resend_safe: $safe:expr) => {
        pub(crate) fn $fn_name() -> &'static LuaScript {
            static SCRIPT: OnceLock<LuaScript> = OnceLock::new();
            SCRIPT.get_or_init(|| LuaScript {
                name: $file,
                script: redis::Script::new(&crate::chaos::script_text(source::assemble(
                    include_str!($file),
                ))),
                resend_safe: $safe,
            })
        }
    };
}

// Each script's header says what a late copy of it does (a call that
// reaches Redis again at any later moment); none changes what belongs to a
// newer hold. `resend_safe` says more: a second run is also harmless to
// the caller's own reading of the reply.

// A retry with the same hold token finds its hold in place: the expiry only
// grows (an extension made since is kept) and a fresh token above every
// earlier one is issued (the first reply, with its token, was lost).
script!(acquire, "acquire.lua", resend_safe: true);
// A retry finds its own hold field and answers that hold's token again;
// it never deletes the handle's tenure and never returns a token below the
// handle's highest.
script!(reentrant_acquire, "reentrant_acquire.lua", resend_safe: true);
// Not resent: a second run answers "not ours" although the first one
// released the hold (a late copy itself is harmless: it checks its hold's
// token, and every hold has its own).
script!(release, "release.lua", resend_safe: false);
script!(reentrant_release, "reentrant_release.lua", resend_safe: false);
// Only ever raise the expiry of the hold they name.
script!(extend, "extend.lua", resend_safe: true);
script!(extend_batch, "extend_batch.lua", resend_safe: true);
// Read only.
script!(inspect, "inspect.lua", resend_safe: true);
script!(hold_exists, "hold_exists.lua", resend_safe: true);
// Not resent: a second run answers "not held" although the first one
// deleted the lock (a late copy deletes only the holder it names).
script!(force_unlock, "force_unlock.lua", resend_safe: false);
// Not resent: a second write could be refused (a higher token in between)
// although the first one was applied, and a late copy can put back an
// older value of the same holder under the same token.
script!(fenced_write, "fenced_write.lua", resend_safe: false);
// Read only.
script!(fenced_read, "fenced_read.lua", resend_safe: true);
// Only ever raises a counter or a tenure's token.
script!(raise_fence, "raise_fence.lua", resend_safe: true);
// A late copy only wakes waiters again, and they find the lock as it is.
script!(announce_free, "announce_free.lua", resend_safe: true);
// A second run finds the entry gone and no reservation naming the waiter.
script!(leave_queue, "leave_queue.lua", resend_safe: true);
// Semaphores. A retry with the same hold token finds its lease in place:
// its end only moves later and a fresh token is issued.
script!(permit_acquire, "permit_acquire.lua", resend_safe: true);
// Not resent: a second run answers "not ours" although the first one
// released the permits (a late copy finds no member and changes nothing).
script!(permit_release, "permit_release.lua", resend_safe: false);
// Read only.
script!(permit_inspect, "permit_inspect.lua", resend_safe: true);
// Read-write locks. A retry with the same hold token finds its lease in
// place: its end only moves later and a fresh token is issued.
script!(rw_read_acquire, "rw_read_acquire.lua", resend_safe: true);
// Not resent, as release.lua.
script!(rw_write_release, "rw_write_release.lua", resend_safe: false);
// Not resent: a second run answers "not ours" although the first one
// downgraded the hold (a late copy changes nothing).
script!(rw_downgrade, "rw_downgrade.lua", resend_safe: false);
// Elections. Announces only while the hold leads, never below a newer
// term: a second run announces the same again.
script!(election_announce, "election_announce.lua", resend_safe: true);
// Read only.
script!(election_leader, "election_leader.lua", resend_safe: true);
// Deletes only the named leader's announcement; a second run only wakes
// observers again.
script!(election_resign, "election_resign.lua", resend_safe: true);

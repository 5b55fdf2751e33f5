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

/// Helpers shared by the lock scripts (see the file).
const PRELUDE: &str = include_str!("prelude.lua");

macro_rules! script {
    ($fn_name:ident, $file:literal, resend_safe: $safe:expr) => {
        pub(crate) fn $fn_name() -> &'static LuaScript {
            static SCRIPT: OnceLock<LuaScript> = OnceLock::new();
            SCRIPT.get_or_init(|| LuaScript {
                name: $file,
                script: redis::Script::new(&crate::chaos::script_text(format!(
                    "{PRELUDE}{}",
                    include_str!($file)
                ))),
                resend_safe: $safe,
            })
        }
    };
}

// An acquire retried with the same hold token finds its hold in place.
script!(acquire, "acquire.lua", resend_safe: true);
script!(reentrant_acquire, "reentrant_acquire.lua", resend_safe: true);
// A second release of one hold would answer "not ours" although the first
// one released it.
script!(release, "release.lua", resend_safe: false);
script!(reentrant_release, "reentrant_release.lua", resend_safe: false);
script!(extend, "extend.lua", resend_safe: true);
script!(extend_batch, "extend_batch.lua", resend_safe: true);
script!(inspect, "inspect.lua", resend_safe: true);
script!(hold_exists, "hold_exists.lua", resend_safe: true);
// A second DEL could delete the lock of whoever took it in between.
script!(force_unlock, "force_unlock.lua", resend_safe: false);
// A second write could be refused (a higher token in between) although the
// first one was applied.
script!(fenced_write, "fenced_write.lua", resend_safe: false);
script!(fenced_read, "fenced_read.lua", resend_safe: true);
script!(raise_fence, "raise_fence.lua", resend_safe: true);
// A late copy only wakes waiters again, and they find the lock as it is.
script!(announce_free, "announce_free.lua", resend_safe: true);

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
}

const FENCE_PRELUDE: &str = include_str!("fence.lua");

macro_rules! script {
    ($fn_name:ident, $file:literal) => {
        script!($fn_name, $file, "");
    };
    ($fn_name:ident, $file:literal, $prelude:expr) => {
        pub(crate) fn $fn_name() -> &'static LuaScript {
            static SCRIPT: OnceLock<LuaScript> = OnceLock::new();
            SCRIPT.get_or_init(|| LuaScript {
                name: $file,
                script: redis::Script::new(&format!("{}{}", $prelude, include_str!($file))),
            })
        }
    };
}

script!(acquire, "acquire.lua", FENCE_PRELUDE);
script!(release, "release.lua");
script!(extend, "extend.lua");
script!(reentrant_acquire, "reentrant_acquire.lua", FENCE_PRELUDE);
script!(reentrant_release, "reentrant_release.lua");
script!(reentrant_extend, "reentrant_extend.lua");
script!(inspect, "inspect.lua");
script!(force_unlock, "force_unlock.lua");
script!(fenced_write, "fenced_write.lua");
script!(fenced_read, "fenced_read.lua");
script!(raise_fence, "raise_fence.lua");
script!(extend_batch, "extend_batch.lua");

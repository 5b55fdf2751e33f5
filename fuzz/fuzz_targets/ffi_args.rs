//! The C ABI driven by bytes: each byte picks a call, its handle argument
//! (live, freed, of another type, or a random address) and its string
//! argument (bytes from the input). No call may panic or crash; a handle
//! that is not a live one of the right type is an invalid argument.
#![no_main]

use std::ffi::{c_char, CString};
use std::ptr;

use latchkey::ffi::cancel::*;
use latchkey::ffi::client::*;
use latchkey::ffi::lock::*;
use latchkey::ffi::status::latchkey_status::{self, *};
use libfuzzer_sys::fuzz_target;

fn string(data: &mut &[u8]) -> CString {
    let len = data.first().map_or(0, |b| usize::from(*b % 16));
    let taken = &data[1.min(data.len())..(1 + len).min(data.len())];
    *data = &data[(1 + len).min(data.len())..];
    let end = taken.iter().position(|b| *b == 0).unwrap_or(taken.len());
    CString::new(&taken[..end]).unwrap_or_default()
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let mut client: *mut latchkey_client = ptr::null_mut();
    // SAFETY: valid string and out pointers.
    let opened = unsafe {
        latchkey_client_open(
            c"redis://127.0.0.1:1".as_ptr(),
            ptr::null(),
            &mut client,
            ptr::null_mut(),
        )
    };
    assert_eq!(opened, LATCHKEY_OK);
    let mut locks: Vec<*mut latchkey_lock> = Vec::new();
    let mut freed: Vec<usize> = Vec::new();
    let mut cancels: Vec<*mut latchkey_cancel> = Vec::new();
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        let text = string(&mut data);
        // A handle: live, freed, the client (wrong type), or an address.
        let pick = |n: u8| -> usize {
            match n % 4 {
                0 => locks.last().map_or(8, |l| *l as usize),
                1 => freed.last().copied().unwrap_or(16),
                2 => client as usize,
                _ => (usize::from(n) << 4).max(8),
            }
        };
        let handle = pick(op >> 3);
        let live_lock = locks.iter().any(|l| *l as usize == handle);
        let live_cancel = cancels.iter().any(|c| *c as usize == handle);
        // SAFETY: the point of the target: every pointer is refused before
        // it is read unless it is a live handle of the right type; strings
        // and out pointers are valid.
        let status: latchkey_status = unsafe {
            match op % 6 {
                0 => {
                    let mut lock = ptr::null_mut();
                    let s = latchkey_lock_new(
                        client,
                        text.as_ptr(),
                        ptr::null(),
                        &mut lock,
                        ptr::null_mut(),
                    );
                    if s == LATCHKEY_OK {
                        locks.push(lock);
                    }
                    s
                }
                1 => {
                    let mut name: *const c_char = ptr::null();
                    let s = latchkey_lock_name(
                        handle as *const latchkey_lock,
                        &mut name,
                        ptr::null_mut(),
                    );
                    assert_eq!(s == LATCHKEY_OK, live_lock);
                    s
                }
                2 => {
                    let s = latchkey_lock_free(handle as *mut latchkey_lock);
                    assert_eq!(s == LATCHKEY_OK, live_lock);
                    if live_lock {
                        locks.retain(|l| *l as usize != handle);
                        freed.push(handle);
                    }
                    s
                }
                3 => {
                    let mut cancel = ptr::null_mut();
                    let s = latchkey_cancel_new(&mut cancel, ptr::null_mut());
                    cancels.push(cancel);
                    s
                }
                4 => {
                    let s =
                        latchkey_cancel_trigger(handle as *mut latchkey_cancel, ptr::null_mut());
                    assert_eq!(s == LATCHKEY_OK, live_cancel);
                    s
                }
                _ => {
                    let mut c = ptr::null_mut();
                    let s =
                        latchkey_client_open(text.as_ptr(), ptr::null(), &mut c, ptr::null_mut());
                    if s == LATCHKEY_OK {
                        assert_eq!(latchkey_client_free(c), LATCHKEY_OK);
                    }
                    s
                }
            }
        };
        assert_ne!(status, LATCHKEY_PANIC);
    }
    // SAFETY: every live handle made above, freed once.
    unsafe {
        for lock in locks {
            assert_eq!(latchkey_lock_free(lock), LATCHKEY_OK);
        }
        for cancel in cancels {
            assert_eq!(latchkey_cancel_free(cancel), LATCHKEY_OK);
        }
        assert_eq!(latchkey_client_free(client), LATCHKEY_OK);
    }
});

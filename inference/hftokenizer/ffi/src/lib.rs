//! A C interface to a `tokenizers::Tokenizer` read from tokenizer.json.
//!
//! Every function that can fail returns a status and writes an error message
//! (freed with `att_tok_free_string`). Strings cross as (pointer, length)
//! UTF-8 byte ranges; results are allocated here and freed by the matching
//! `att_tok_free_*` function.

use std::os::raw::c_char;
use std::ptr;
use std::slice;
use tokenizers::{Decoder, OffsetReferential, OffsetType, PreTokenizer, Tokenizer};

fn set_err(err: *mut *mut c_char, msg: String) {
    if err.is_null() {
        return;
    }
    let mut bytes = msg.into_bytes();
    bytes.retain(|&b| b != 0);
    bytes.push(0);
    let boxed = bytes.into_boxed_slice();
    unsafe { *err = Box::into_raw(boxed) as *mut c_char };
}

unsafe fn str_arg<'a>(p: *const u8, n: usize) -> Result<&'a str, String> {
    if n == 0 {
        return Ok("");
    }
    std::str::from_utf8(slice::from_raw_parts(p, n)).map_err(|e| format!("input is not UTF-8: {e}"))
}

/// Reads a tokenizer from the bytes of a tokenizer.json.
#[no_mangle]
pub unsafe extern "C" fn att_tok_new(json: *const u8, n: usize, err: *mut *mut c_char) -> *mut Tokenizer {
    let bytes = slice::from_raw_parts(json, n);
    match Tokenizer::from_bytes(bytes) {
        Ok(t) => Box::into_raw(Box::new(t)),
        Err(e) => {
            set_err(err, e.to_string());
            ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn att_tok_free(t: *mut Tokenizer) {
    if !t.is_null() {
        drop(Box::from_raw(t));
    }
}

/// Frees a string returned in `err`, or by `att_tok_decode_pieces` / `att_tok_id_to_token`.
#[no_mangle]
pub unsafe extern "C" fn att_tok_free_string(s: *mut c_char) {
    if !s.is_null() {
        let len = std::ffi::CStr::from_ptr(s).to_bytes().len();
        drop(Box::from_raw(slice::from_raw_parts_mut(s as *mut u8, len + 1)));
    }
}

/// An encoding: ids, and the tokens' strings concatenated with their byte
/// offsets (token i is tokens[offsets[i]..offsets[i+1]]).
#[repr(C)]
pub struct AttEncoding {
    pub len: usize,
    pub ids: *mut u32,
    pub offsets: *mut usize, // len + 1 entries
    pub tokens: *mut u8,
    pub tokens_len: usize,
}

fn leak<T>(v: Vec<T>) -> *mut T {
    Box::into_raw(v.into_boxed_slice()) as *mut T
}

unsafe fn unleak<T>(p: *mut T, n: usize) {
    if !p.is_null() {
        drop(Box::from_raw(slice::from_raw_parts_mut(p, n)));
    }
}

/// Encodes text; add_special applies the tokenizer's post-processor
/// (its special tokens).
#[no_mangle]
pub unsafe extern "C" fn att_tok_encode(
    t: *const Tokenizer,
    text: *const u8,
    n: usize,
    add_special: bool,
    out: *mut AttEncoding,
    err: *mut *mut c_char,
) -> bool {
    let text = match str_arg(text, n) {
        Ok(s) => s,
        Err(e) => {
            set_err(err, e);
            return false;
        }
    };
    let enc = match (*t).encode(text, add_special) {
        Ok(e) => e,
        Err(e) => {
            set_err(err, e.to_string());
            return false;
        }
    };
    let ids = enc.get_ids().to_vec();
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    let mut tokens = Vec::new();
    offsets.push(0);
    for tok in enc.get_tokens() {
        tokens.extend_from_slice(tok.as_bytes());
        offsets.push(tokens.len());
    }
    let len = ids.len();
    let tokens_len = tokens.len();
    *out = AttEncoding { len, ids: leak(ids), offsets: leak(offsets), tokens: leak(tokens), tokens_len };
    true
}

#[no_mangle]
pub unsafe extern "C" fn att_tok_free_encoding(e: *mut AttEncoding) {
    let e = &mut *e;
    unleak(e.ids, e.len);
    unleak(e.offsets, e.len + 1);
    unleak(e.tokens, e.tokens_len);
    *e = AttEncoding { len: 0, ids: ptr::null_mut(), offsets: ptr::null_mut(), tokens: ptr::null_mut(), tokens_len: 0 };
}

fn c_string(s: String) -> *mut c_char {
    let mut bytes = s.into_bytes();
    bytes.retain(|&b| b != 0);
    bytes.push(0);
    Box::into_raw(bytes.into_boxed_slice()) as *mut c_char
}

/// Turns tokens (pieces) into text with the tokenizer's decoder; the tokens
/// are passed as one byte string with offsets, as in AttEncoding.
#[no_mangle]
pub unsafe extern "C" fn att_tok_decode_pieces(
    t: *const Tokenizer,
    tokens: *const u8,
    offsets: *const usize,
    count: usize,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> bool {
    let offs = if count == 0 { &[][..] } else { slice::from_raw_parts(offsets, count + 1) };
    let all = if count == 0 || offs[count] == 0 { &[][..] } else { slice::from_raw_parts(tokens, offs[count]) };
    let mut toks = Vec::with_capacity(count);
    for i in 0..count {
        match std::str::from_utf8(&all[offs[i]..offs[i + 1]]) {
            Ok(s) => toks.push(s.to_string()),
            Err(e) => {
                set_err(err, format!("token {i} is not UTF-8: {e}"));
                return false;
            }
        }
    }
    let text = match (*t).get_decoder() {
        Some(d) => d.decode(toks),
        None => Ok(toks.concat()),
    };
    match text {
        Ok(s) => {
            *out = c_string(s);
            true
        }
        Err(e) => {
            set_err(err, e.to_string());
            false
        }
    }
}

/// The number of ids, added tokens included.
#[no_mangle]
pub unsafe extern "C" fn att_tok_vocab_size(t: *const Tokenizer) -> usize {
    (*t).get_vocab_size(true)
}

/// The token of an id, or null when the id is not in the vocabulary.
#[no_mangle]
pub unsafe extern "C" fn att_tok_id_to_token(t: *const Tokenizer, id: u32) -> *mut c_char {
    match (*t).id_to_token(id) {
        Some(s) => c_string(s),
        None => ptr::null_mut(),
    }
}

/// The id of a token, or -1.
#[no_mangle]
pub unsafe extern "C" fn att_tok_token_to_id(t: *const Tokenizer, tok: *const u8, n: usize) -> i64 {
    match str_arg(tok, n) {
        Ok(s) => (*t).token_to_id(s).map(|i| i as i64).unwrap_or(-1),
        Err(_) => -1,
    }
}

/// Splits text as the tokenizer does before its model runs: special and
/// added tokens taken out, the normaliser applied, then the pre-tokenizer.
/// A split that is an added token gets its id; the others get u32::MAX (the
/// model has still to tokenise them). Returned as an AttEncoding whose
/// tokens are the splits.
#[no_mangle]
pub unsafe extern "C" fn att_tok_pre_tokenize(
    t: *const Tokenizer,
    text: *const u8,
    n: usize,
    out: *mut AttEncoding,
    err: *mut *mut c_char,
) -> bool {
    let text = match str_arg(text, n) {
        Ok(s) => s,
        Err(e) => {
            set_err(err, e);
            return false;
        }
    };
    let t = &*t;
    let mut pre = t.get_added_vocabulary().extract_and_normalize(t.get_normalizer(), text);
    if let Some(p) = t.get_pre_tokenizer() {
        if let Err(e) = p.pre_tokenize(&mut pre) {
            set_err(err, e.to_string());
            return false;
        }
    }
    let mut ids = Vec::new();
    let mut offsets = vec![0usize];
    let mut tokens = Vec::new();
    for (s, _, toks) in pre.get_splits(OffsetReferential::Normalized, OffsetType::Byte) {
        ids.push(match toks {
            Some(v) if v.len() == 1 => v[0].id,
            _ => u32::MAX,
        });
        tokens.extend_from_slice(s.as_bytes());
        offsets.push(tokens.len());
    }
    let len = ids.len();
    let tokens_len = tokens.len();
    *out = AttEncoding { len, ids: leak(ids), offsets: leak(offsets), tokens: leak(tokens), tokens_len };
    true
}

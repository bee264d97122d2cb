//! What both hosts, the applications' ([`crate::host`]) and the contracts'
//! ([`crate::contract`]), do with a guest: charge fuel for a host call, read and write the
//! guest's memory, and frame byte strings for it. Each host says how it refuses a call and
//! runs out of fuel ([`GuestHost`]), since the two stop their guests with their own traps.

use wasmi::errors::LinkerError;
use wasmi::{AsContextMut, Caller, Error, Linker, Memory};

use vc_engine::Reject;

use crate::abi::IMPORT_MODULE;
use crate::codes;
use crate::limits::{HOST_CALL_FUEL, MAX_CODE_BYTES, MAX_MESSAGE_BYTES, byte_fuel};

/// A host's side of a guest call.
pub(crate) trait GuestHost {
    /// The guest's exported memory, once the instance has one.
    fn memory(&self) -> Option<Memory>;
    /// The trap that rejects the guest's call with `code`.
    fn reject(code: &'static str, reason: String) -> Error;
    /// The trap for a call that ran out of fuel.
    fn out_of_fuel() -> Error;
    /// The call's buffers: its input, the scratch the last read left, and its output.
    fn buffers(&mut self) -> Buffers<'_>;
}

/// A guest call's buffers, as [`GuestHost::buffers`] lends them.
pub(crate) struct Buffers<'a> {
    pub input: &'a mut Vec<u8>,
    pub scratch: &'a mut Vec<u8>,
    pub output: &'a mut Option<Vec<u8>>,
}

/// Links the imports both hosts offer alike over a call's [`Buffers`]: `input_len`,
/// `input_read`, `output` (at most `max_output` bytes, `output_what` naming them in a
/// refusal) and `scratch_read`.
pub(crate) fn link_buffers<H: GuestHost + 'static>(
    l: &mut Linker<H>,
    max_output: usize,
    output_what: &'static str,
) -> Result<(), LinkerError> {
    let m = IMPORT_MODULE;
    l.func_wrap(
        m,
        "input_len",
        |mut c: Caller<'_, H>| -> Result<i32, Error> {
            charge(&mut c, 0)?;
            Ok(len_i32(c.data_mut().buffers().input.len()))
        },
    )?;
    l.func_wrap(
        m,
        "input_read",
        |mut c: Caller<'_, H>, dst: i32| -> Result<(), Error> {
            copy_out(&mut c, dst, |b| b.input)
        },
    )?;
    l.func_wrap(
        m,
        "output",
        move |mut c: Caller<'_, H>, ptr: i32, len: i32| -> Result<(), Error> {
            let bytes = read(&c, ptr, len, max_output, output_what)?;
            charge(&mut c, bytes.len())?;
            *c.data_mut().buffers().output = Some(bytes);
            Ok(())
        },
    )?;
    l.func_wrap(
        m,
        "scratch_read",
        |mut c: Caller<'_, H>, dst: i32| -> Result<(), Error> {
            copy_out(&mut c, dst, |b| b.scratch)
        },
    )?;
    Ok(())
}

/// Charges for the buffer `pick` chooses and writes it to the guest's memory at `dst`.
fn copy_out<H: GuestHost>(
    c: &mut Caller<'_, H>,
    dst: i32,
    pick: fn(Buffers<'_>) -> &mut Vec<u8>,
) -> Result<(), Error> {
    let bytes = std::mem::take(pick(c.data_mut().buffers()));
    charge(c, bytes.len())?;
    let r = write(c, dst, &bytes);
    *pick(c.data_mut().buffers()) = bytes;
    r
}

/// Charges a host call that moves `bytes` bytes: [`HOST_CALL_FUEL`] plus their
/// [`byte_fuel`]. Short of fuel, the guest's fuel is spent and the call stops.
pub(crate) fn charge<H: GuestHost>(c: &mut Caller<'_, H>, bytes: usize) -> Result<(), Error> {
    let left = c.get_fuel()?;
    match left.checked_sub(HOST_CALL_FUEL + byte_fuel(bytes)) {
        Some(rest) => c.set_fuel(rest),
        None => {
            c.set_fuel(0)?;
            Err(H::out_of_fuel())
        }
    }
}

fn memory<H: GuestHost>(c: &Caller<'_, H>) -> Result<Memory, Error> {
    c.data()
        .memory()
        .ok_or_else(|| H::reject(codes::BAD_CALL, "no memory".into()))
}

/// Reads a guest's text of at most [`MAX_MESSAGE_BYTES`] at `ptr` (`what` names it), with
/// invalid UTF-8 replaced.
pub(crate) fn text<H: GuestHost>(
    c: &Caller<'_, H>,
    ptr: i32,
    len: i32,
    what: &str,
) -> Result<String, Error> {
    let raw = read(c, ptr, len, MAX_MESSAGE_BYTES, what)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The guest's rejection from the code and reason its `reject` call points at (`args`: code
/// pointer and length, reason pointer and length): a code the host knows keeps its name, any
/// other becomes [`codes::GUEST`] with the code in the reason. A malformed code refuses the
/// call itself.
pub(crate) fn guest_reject<H: GuestHost>(
    c: &Caller<'_, H>,
    args: [i32; 4],
) -> Result<Reject, Error> {
    let code = read(c, args[0], args[1], MAX_CODE_BYTES, "a rejection code")?;
    let reason = text(c, args[2], args[3], "a rejection reason")?;
    if !codes::valid_guest_code(&code) {
        return Err(H::reject(
            codes::BAD_CALL,
            "a rejection code is 1 to 32 bytes of a-z, 0-9, '-', not starting with vm-".into(),
        ));
    }
    let code = String::from_utf8_lossy(&code).into_owned();
    Ok(match codes::intern(&code) {
        Some(code) => Reject::new(code, reason),
        None => Reject::new(codes::GUEST, format!("{code}: {reason}")),
    })
}

/// Reads `len` bytes at `ptr` of the guest's memory, at most `max` (`what` names them).
pub(crate) fn read<H: GuestHost>(
    c: &Caller<'_, H>,
    ptr: i32,
    len: i32,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > max {
        return Err(H::reject(
            codes::BAD_CALL,
            format!("{what} has {len} bytes, at most {max}"),
        ));
    }
    memory(c)?
        .data(c)
        .get(ptr..ptr.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            H::reject(
                codes::BAD_CALL,
                format!("{what} at {ptr}+{len} is outside memory"),
            )
        })
}

/// Writes `bytes` at `dst` in the guest's memory.
pub(crate) fn write<H: GuestHost>(
    c: &mut Caller<'_, H>,
    dst: i32,
    bytes: &[u8],
) -> Result<(), Error> {
    let mem = memory(c)?;
    let dst = dst as u32 as usize;
    let out = mem
        .data_mut(c.as_context_mut())
        .get_mut(dst..dst.saturating_add(bytes.len()))
        .ok_or_else(|| {
            H::reject(
                codes::BAD_CALL,
                format!("{} bytes at {dst} are outside memory", bytes.len()),
            )
        })?;
    out.copy_from_slice(bytes);
    Ok(())
}

/// A length as the guest's `i32` (saturating; inputs are far smaller).
pub(crate) fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Appends `b` with its length as a big-endian `u32`: how every byte string the guest reads is
/// framed.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

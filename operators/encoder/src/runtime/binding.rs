//! IO binding over buffers lexembed owns: the graph reads its inputs from, and writes its pooled output
//! into, host memory that lives as long as the session and is reused by every call.
//!
//! `ort`'s safe `IoBinding` clones borrowed inputs and binds outputs only to tensors of one fixed shape,
//! while every model call here has its own `[rows, seq]`. So this module talks to the ONNX Runtime C
//! API directly: per call it wraps slices of the reused buffers in non-owning `OrtValue`s of the call's
//! shape, binds them and runs. On the CPU provider nothing is copied; on CUDA, ONNX Runtime copies the
//! inputs to the device and only the `[rows, dim]` output back. Owns every `unsafe` of the crate.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::sys::{ONNXTensorElementDataType, OrtIoBinding, OrtStatusPtr, OrtValue};
use ort::{AsPointer, api};

use crate::error::{EncoderError, Result};

/// One binding per session, re-bound on every call.
pub(crate) struct Binding {
    ptr: NonNull<OrtIoBinding>,
    host: MemoryInfo<'static>,
}

// The binding is only used by the thread that owns its session (`ModelSession` is `Send`, not shared).
unsafe impl Send for Binding {}

impl Binding {
    pub(crate) fn new(session: &Session) -> Result<Self> {
        let mut ptr: *mut OrtIoBinding = std::ptr::null_mut();
        // SAFETY: the session pointer is valid for the session's lifetime; ORT writes `ptr`.
        check(unsafe { (api().CreateIoBinding)(session.ptr().cast_mut(), &mut ptr) })?;
        let ptr = NonNull::new(ptr).ok_or_else(|| infer("CreateIoBinding returned null"))?;
        let host = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Arena,
            MemoryType::Default,
        )
        .map_err(|e| infer(e.to_string()))?;
        Ok(Self { ptr, host })
    }

    /// Binds `data` (host memory) as input `name` of shape `shape`.
    pub(crate) fn bind_input(
        &mut self,
        name: &CStr,
        data: &mut [i64],
        shape: &[i64],
    ) -> Result<()> {
        let value = self.host_value(data, shape)?;
        // SAFETY: binding and value are valid; ORT keeps its own reference to the value.
        let status = unsafe { (api().BindInput)(self.ptr.as_ptr(), name.as_ptr(), value.0) };
        check(status)
    }

    /// Binds `data` (host memory) as output `name` of shape `shape`: the graph writes into it.
    pub(crate) fn bind_output(
        &mut self,
        name: &CStr,
        data: &mut [f32],
        shape: &[i64],
    ) -> Result<()> {
        let value = self.host_value(data, shape)?;
        // SAFETY: as in `bind_input`.
        let status = unsafe { (api().BindOutput)(self.ptr.as_ptr(), name.as_ptr(), value.0) };
        check(status)
    }

    /// Runs the session on what is bound. The bound buffers must not move until this returns.
    pub(crate) fn run(&self, session: &Session) -> Result<()> {
        // SAFETY: session and binding are valid; no run options.
        let status = unsafe {
            (api().RunWithBinding)(
                session.ptr().cast_mut(),
                std::ptr::null(),
                self.ptr.as_ptr(),
            )
        };
        check(status)
    }

    /// A non-owning tensor over `data` with `shape`; the caller keeps `data` alive while it is bound.
    fn host_value<T: Element>(&self, data: &mut [T], shape: &[i64]) -> Result<OwnedValue> {
        let want: i64 = shape.iter().product();
        if usize::try_from(want).ok() != Some(data.len()) {
            return Err(infer(format!(
                "binding {} values as shape {shape:?}",
                data.len()
            )));
        }
        let mut value: *mut OrtValue = std::ptr::null_mut();
        // SAFETY: `data` is valid for `size_of_val(data)` bytes; ORT does not take ownership of it.
        check(unsafe {
            (api().CreateTensorWithDataAsOrtValue)(
                self.host.ptr(),
                data.as_mut_ptr().cast(),
                std::mem::size_of_val(data),
                shape.as_ptr(),
                shape.len(),
                T::ONNX_TYPE,
                &mut value,
            )
        })?;
        NonNull::new(value)
            .map(|v| OwnedValue(v.as_ptr()))
            .ok_or_else(|| infer("CreateTensorWithDataAsOrtValue returned null"))
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        // SAFETY: created by CreateIoBinding, released once.
        unsafe { (api().ReleaseIoBinding)(self.ptr.as_ptr()) }
    }
}

/// An `OrtValue` we created; the binding holds its own reference once bound.
struct OwnedValue(*mut OrtValue);

impl Drop for OwnedValue {
    fn drop(&mut self) {
        // SAFETY: created by CreateTensorWithDataAsOrtValue, released once.
        unsafe { (api().ReleaseValue)(self.0) }
    }
}

/// Element types lexembed binds.
trait Element {
    const ONNX_TYPE: ONNXTensorElementDataType;
}

impl Element for i64 {
    const ONNX_TYPE: ONNXTensorElementDataType =
        ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
}

impl Element for f32 {
    const ONNX_TYPE: ONNXTensorElementDataType =
        ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

/// A graph input or output name as ONNX Runtime's C API wants it.
pub(crate) fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|e| infer(format!("graph name {name:?}: {e}")))
}

fn check(status: OrtStatusPtr) -> Result<()> {
    if status.0.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null status owns its message until released, which happens right after copying it.
    let message = unsafe {
        let msg = (api().GetErrorMessage)(status.0);
        let text = if msg.is_null() {
            "unknown ONNX Runtime error".to_string()
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        (api().ReleaseStatus)(status.0);
        text
    };
    Err(infer(message))
}

fn infer(message: impl Into<String>) -> EncoderError {
    EncoderError::Inference(message.into())
}

//! The completion queue of a synchronous handle: requests complete inside `submit` and wait here until
//! `poll`, bounded so a reactor that never polls sees backpressure as an io_uring one would.

use crate::{IoDone, IoError, IoReq, SubmitError};
use std::collections::VecDeque;

/// Completed requests waiting for `poll`.
#[derive(Debug)]
pub(crate) struct DoneQueue {
    done: VecDeque<IoDone>,
    depth: usize,
}

impl DoneQueue {
    /// A queue holding at most `depth` (at least 1) completions.
    pub(crate) fn new(depth: usize) -> DoneQueue {
        DoneQueue { done: VecDeque::new(), depth: depth.max(1) }
    }

    /// Sets the depth (at least 1).
    pub(crate) fn set_depth(&mut self, depth: usize) {
        self.depth = depth.max(1);
    }

    /// The depth.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Hands the request back when the queue is full.
    pub(crate) fn admit(&self, req: IoReq) -> Result<IoReq, SubmitError> {
        if self.done.len() >= self.depth { Err(SubmitError::QueueFull(req)) } else { Ok(req) }
    }

    /// Queues a completion.
    pub(crate) fn push(&mut self, tag: u64, result: Result<(), IoError>, buf: Option<crate::IoBuf>) {
        self.done.push_back(IoDone { tag, result, buf });
    }

    /// Moves every completion to `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<IoDone>) -> usize {
        let n = self.done.len();
        out.extend(self.done.drain(..));
        n
    }

    /// Completions waiting.
    pub(crate) fn len(&self) -> usize {
        self.done.len()
    }
}

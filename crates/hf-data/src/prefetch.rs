//! Background assembly of batches, so data preparation overlaps with training.

use std::iter::FusedIterator;
use std::panic;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::{self, JoinHandle, Scope, ScopedJoinHandle};

/// Iterator over items produced by a background thread; see [`prefetch`] and
/// [`prefetch_scoped`].
///
/// Yields exactly the items of the wrapped iterator, in the same order. If the producer
/// panics, the panic is re-raised in the consumer when it reaches that point (rather than the
/// epoch silently ending early). Dropping it early stops the producer at its next item.
pub struct Prefetch<'scope, T: Send + 'scope> {
    rx: Option<Receiver<T>>,
    worker: Worker<'scope, T>,
    remaining: (usize, Option<usize>),
}

enum Worker<'scope, T> {
    Owned(Option<JoinHandle<()>>),
    Scoped(Option<ScopedJoinHandle<'scope, ()>>),
    /// No thread could be started: items are produced on the caller's thread.
    Inline(Box<dyn Iterator<Item = T> + Send + 'scope>),
}

/// Runs `iter` on a new background thread, keeping up to `depth` finished items queued
/// (`depth` 0 still overlaps the production of one item with the consumer's work).
///
/// Needs a `'static` iterator, e.g. [`crate::batches_owned`] over an `Arc<Dataset>`; for a
/// borrowed dataset use [`prefetch_scoped`]. If the OS refuses to start a thread, the items
/// are produced inline instead (same sequence, no overlap).
pub fn prefetch<T, I>(iter: I, depth: usize) -> Prefetch<'static, T>
where
    T: Send + 'static,
    I: Iterator<Item = T> + Send + 'static,
{
    let remaining = iter.size_hint();
    let (tx, rx) = sync_channel(depth);
    // The iterator goes to the thread through a slot we can take back if spawning fails.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(iter)));
    let thread_slot = slot.clone();
    let spawned = thread::Builder::new()
        .name("hf-data-prefetch".into())
        .spawn(move || {
            let iter = thread_slot.lock().ok().and_then(|mut s| s.take());
            drop(thread_slot);
            if let Some(iter) = iter {
                for item in iter {
                    if tx.send(item).is_err() {
                        break; // consumer gone
                    }
                }
            }
        });
    match spawned {
        Ok(handle) => Prefetch {
            rx: Some(rx),
            worker: Worker::Owned(Some(handle)),
            remaining,
        },
        Err(_) => {
            let iter = slot.lock().ok().and_then(|mut s| s.take());
            let iter: Box<dyn Iterator<Item = T> + Send> = match iter {
                Some(it) => Box::new(it),
                None => Box::new(std::iter::empty()),
            };
            Prefetch {
                rx: None,
                worker: Worker::Inline(iter),
                remaining,
            }
        }
    }
}

/// Like [`prefetch`], but the producer is a scoped thread of `scope`, so `iter` may borrow
/// (e.g. [`crate::batches`] over a `&Dataset`):
///
/// ```text
/// std::thread::scope(|s| {
///     for batch in prefetch_scoped(s, batches(&ds, &cfg, seed, epoch), 2) { /* train */ }
/// });
/// ```
///
/// If the OS refuses to start a thread, this panics like [`std::thread::Scope::spawn`].
pub fn prefetch_scoped<'scope, 'env, T, I>(
    scope: &'scope Scope<'scope, 'env>,
    iter: I,
    depth: usize,
) -> Prefetch<'scope, T>
where
    T: Send + 'scope,
    I: Iterator<Item = T> + Send + 'scope,
{
    let remaining = iter.size_hint();
    let (tx, rx) = sync_channel(depth);
    let handle = scope.spawn(move || {
        for item in iter {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    Prefetch {
        rx: Some(rx),
        worker: Worker::Scoped(Some(handle)),
        remaining,
    }
}

impl<T: Send> Prefetch<'_, T> {
    /// Joins a finished producer, re-raising its panic if it had one.
    fn finish(&mut self) {
        let result = match &mut self.worker {
            Worker::Owned(h) => h.take().map(|h| h.join()),
            Worker::Scoped(h) => h.take().map(|h| h.join()),
            Worker::Inline(_) => None,
        };
        if let Some(Err(payload)) = result {
            panic::resume_unwind(payload);
        }
    }
}

impl<T: Send> Iterator for Prefetch<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let item = match (&mut self.worker, &self.rx) {
            (Worker::Inline(iter), _) => iter.next(),
            (_, Some(rx)) => rx.recv().ok(),
            (_, None) => None,
        };
        match item {
            Some(item) => {
                self.remaining.0 = self.remaining.0.saturating_sub(1);
                self.remaining.1 = self.remaining.1.map(|u| u.saturating_sub(1));
                Some(item)
            }
            None => {
                self.remaining = (0, Some(0));
                self.rx = None;
                self.finish();
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.remaining
    }
}

impl<T: Send> FusedIterator for Prefetch<'_, T> {}

impl<T: Send> Drop for Prefetch<'_, T> {
    fn drop(&mut self) {
        // Disconnect first so a producer blocked on a full queue wakes up and stops; then
        // wait for it. A producer panic is not re-raised here (we may already be unwinding).
        self.rx = None;
        match &mut self.worker {
            Worker::Owned(h) => {
                if let Some(h) = h.take() {
                    let _ = h.join();
                }
            }
            Worker::Scoped(h) => {
                if let Some(h) = h.take() {
                    let _ = h.join();
                }
            }
            Worker::Inline(_) => {}
        }
    }
}

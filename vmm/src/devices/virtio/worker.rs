//! The thread an active virtio device runs on: an event loop
//! (`event-manager`) on its queues' eventfds, plus a stop eventfd, so that
//! a device reset or the VM's end stops it between two requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// A running device worker.
#[derive(Debug)]
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

/// Ends the loop when the stop eventfd is written.
struct StopWatch {
    stop: EventFd,
    stopped: Arc<AtomicBool>,
}

impl MutEventSubscriber for StopWatch {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.stop, EventSet::IN)) {
            log::error!("device worker: cannot watch its stop eventfd: {e:?}");
            self.stopped.store(true, Ordering::Release);
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        self.stopped.store(true, Ordering::Release);
    }
}

impl Worker {
    /// Starts thread `name` running `device`'s events until stopped.
    pub fn spawn<S>(name: String, device: S) -> std::io::Result<Worker>
    where
        S: MutEventSubscriber + Send + 'static,
    {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let watch = StopWatch {
            stop: stop.try_clone()?,
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let mut manager = EventManager::<Box<dyn MutEventSubscriber + Send>>::new()
            .map_err(|e| std::io::Error::other(format!("event manager: {e:?}")))?;
        let stopped = Arc::clone(&watch.stopped);
        manager.add_subscriber(Box::new(watch));
        manager.add_subscriber(Box::new(device));
        let thread = thread::Builder::new().name(name.clone()).spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                if let Err(e) = manager.run() {
                    log::error!("{name}: event loop failed: {e:?}");
                    return;
                }
            }
            // Dropping the manager drops the device, which flushes what it
            // must before the thread ends.
        })?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the worker and waits for it: once this returns, the device
    /// touches guest memory no more.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(e) = self.stop.write(1) {
                log::error!("cannot stop a device worker: {e}");
            }
            if thread.join().is_err() {
                log::error!("a device worker panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

//! Keras' `LambdaCallback`: a callback from closures, one per event.

use super::*;

/// No hook: what [`LambdaCallback`] holds for the hooks not given.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

/// One of [`LambdaCallback`]'s hooks: a closure, or [`NoHook`].
pub trait Hook<A> {
    /// Runs it.
    fn run(&mut self, args: A) -> Result<()>;
}

impl<A> Hook<A> for NoHook {
    fn run(&mut self, _: A) -> Result<()> {
        Ok(())
    }
}

macro_rules! hook_impls {
    ($(($($arg:ident: $ty:ty),*)),*) => {$(
        impl<'x, F: FnMut($($ty),*) -> Result<()>> Hook<($($ty,)*)> for F {
            fn run(&mut self, ($($arg,)*): ($($ty,)*)) -> Result<()> {
                self($($arg),*)
            }
        }
    )*};
}
hook_impls!((a: usize, b: &'x Logs, c: &'x mut dyn Trainee), (a: usize, c: &'x mut dyn Trainee), (a: &'x Logs, c: &'x mut dyn Trainee), (c: &'x mut dyn Trainee));

/// Keras' `LambdaCallback`: hooks from closures. `LambdaCallback::on_epoch_end(f)` starts one;
/// `.and_on_epoch_begin`, `.and_on_train_batch_begin`, `.and_on_train_batch_end`,
/// `.and_on_train_begin` and `.and_on_train_end` add the others.
///
/// ```ignore
/// let mut log = LambdaCallback::on_epoch_end(|epoch, logs, _model| {
///     println!("epoch {epoch}: loss {:.4}", logs["loss"]);
///     Ok(())
/// })
/// .and_on_train_batch_end(|batch, logs, _model| Ok(()));
/// ```
pub struct LambdaCallback<EE, EB = NoHook, BB = NoHook, BE = NoHook, TB = NoHook, TE = NoHook> {
    epoch_end: EE,
    epoch_begin: EB,
    batch_begin: BB,
    batch_end: BE,
    train_begin: TB,
    train_end: TE,
}

impl<EE: FnMut(usize, &Logs, &mut dyn Trainee) -> Result<()>> LambdaCallback<EE> {
    /// Runs `on_epoch_end(epoch, logs, model)` after each epoch.
    pub fn on_epoch_end(on_epoch_end: EE) -> Self {
        LambdaCallback {
            epoch_end: on_epoch_end,
            epoch_begin: NoHook,
            batch_begin: NoHook,
            batch_end: NoHook,
            train_begin: NoHook,
            train_end: NoHook,
        }
    }
}

impl<EE, EB, BB, BE, TB, TE> LambdaCallback<EE, EB, BB, BE, TB, TE> {
    /// Also runs `f(epoch, model)` before each epoch.
    pub fn and_on_epoch_begin<F: FnMut(usize, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, F, BB, BE, TB, TE> {
        let LambdaCallback { epoch_end, batch_begin, batch_end, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin: f, batch_begin, batch_end, train_begin, train_end }
    }
    /// Also runs `f(batch, model)` before each training batch.
    pub fn and_on_train_batch_begin<F: FnMut(usize, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, F, BE, TB, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_end, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin: f, batch_end, train_begin, train_end }
    }
    /// Also runs `f(batch, logs, model)` after each training batch.
    pub fn and_on_train_batch_end<F: FnMut(usize, &Logs, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, F, TB, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end: f, train_begin, train_end }
    }
    /// Also runs `f(model)` before training.
    pub fn and_on_train_begin<F: FnMut(&mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, BE, F, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin: f, train_end }
    }
    /// Also runs `f(logs, model)` after training.
    pub fn and_on_train_end<F: FnMut(&Logs, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, BE, TB, F> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin, train_end: f }
    }
}

impl<EE, EB, BB, BE, TB, TE> Callback for LambdaCallback<EE, EB, BB, BE, TB, TE>
where
    EE: for<'x> Hook<(usize, &'x Logs, &'x mut dyn Trainee)>,
    EB: for<'x> Hook<(usize, &'x mut dyn Trainee)>,
    BB: for<'x> Hook<(usize, &'x mut dyn Trainee)>,
    BE: for<'x> Hook<(usize, &'x Logs, &'x mut dyn Trainee)>,
    TB: for<'x> Hook<(&'x mut dyn Trainee,)>,
    TE: for<'x> Hook<(&'x Logs, &'x mut dyn Trainee)>,
{
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.epoch_end.run((epoch, logs, model))
    }
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut dyn Trainee) -> Result<()> {
        self.epoch_begin.run((epoch, model))
    }
    fn on_train_batch_begin(&mut self, batch: usize, model: &mut dyn Trainee) -> Result<()> {
        self.batch_begin.run((batch, model))
    }
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.batch_end.run((batch, logs, model))
    }
    fn on_train_begin(&mut self, model: &mut dyn Trainee) -> Result<()> {
        self.train_begin.run((model,))
    }
    fn on_train_end(&mut self, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.train_end.run((logs, model))
    }
}

//! MPI (Open MPI, MPICH) as a [`Collective`], behind the facade's cargo feature `mpi`: kept out
//! of the runtime so that turning the feature on rebuilds only this file and the MPI bindings.

use std::sync::{Arc, Mutex};

use kiln_runtime::distributed::Collective;

/// MPI (Open MPI, MPICH) as a [`Collective`]: `Mpi::init()` once per process, then
/// `model.distribute(mpi.clone())`. Run with `mpirun -np 2 ./program`.
pub struct Mpi {
    world: Mutex<mpi::topology::SimpleCommunicator>,
    rank: usize,
    size: usize,
    // Finalizes MPI when the last handle goes.
    _universe: Mutex<mpi::environment::Universe>,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi").field("rank", &self.rank).field("size", &self.size).finish()
    }
}

// SAFETY: MPI is initialised with thread level Funneled or better and every call goes through
// the mutex, one thread at a time.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Initialises MPI for this process (once); an error if it was already, or if the process was
    /// not started in a way MPI accepts.
    pub fn init() -> kiln_runtime::Result<Arc<Mpi>> {
        use mpi::traits::Communicator;
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized).ok_or_else(|| {
            kiln_runtime::Error::InvalidArgument {
                name: "mpi",
                reason: "MPI could not be initialised (it can be only once per process)".into(),
            }
        })?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Arc::new(Mpi { world: Mutex::new(world), rank, size, _universe: Mutex::new(universe) }))
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, local: &[f64], all: &mut [f64]) {
        use mpi::traits::CommunicatorCollectives;
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        world.all_gather_into(local, all);
    }

    fn all_gather_f32(&self, local: &[f32], all: &mut [f32]) {
        use mpi::traits::CommunicatorCollectives;
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        world.all_gather_into(local, all);
    }
}

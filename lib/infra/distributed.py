"""Running a list of tasks, results in order: in this process, or on the workers of a dask.distributed cluster.

Without a scheduler address the tasks run one after the other in this process: a plain loop, no cluster, no
new process, so a laptop's `make report` runs as it always did. With one ("tcp://host:8786": the notebook
parameter `scheduler`, else $DIMPLED_SCHEDULER) each task is submitted to that cluster: a task whose worker
died is rescheduled by dask (up to its distributed.scheduler.allowed-failures, 3 by default), one that raised
is retried `retries` times. The function and the tasks go to the workers pickled: a module-level function
and plain data, never a closure over a notebook's state.
"""
import os

ENV = "DIMPLED_SCHEDULER"
_clients = {}


def scheduler_address(parameter=None):
    """The scheduler to submit to: `parameter` if given, else $DIMPLED_SCHEDULER, else None (in this process)."""
    return parameter or os.environ.get(ENV) or None


def client(address):
    """A dask.distributed Client connected to `address`, one per address and process (connecting takes time)."""
    from dask.distributed import Client

    c = _clients.get(address)
    if c is None or c.status != "running":
        c = _clients[address] = Client(address, set_as_default=False)
    return c


def close():
    """Close the clients this process opened."""
    while _clients:
        _clients.popitem()[1].close()


def run_tasks(fn, tasks, scheduler=None, done=None, retries=2):
    """[fn(task) for task in tasks], in order; `done()` is called as each one finishes (a progress bar).

    scheduler None: here, one after the other. Else the address of a dask scheduler whose workers run them
    (connected to only when there is a task to run); if one fails for good its exception is raised here and the
    tasks still pending are cancelled."""
    if not tasks:  # every shard was in the cache: no scheduler to reach, nothing to wait for
        return []
    if not scheduler:
        results = []
        for task in tasks:
            results.append(fn(task))
            if done:
                done()
        return results
    from dask.distributed import as_completed

    c = client(scheduler)
    futures = [c.submit(fn, task, retries=retries, pure=False) for task in tasks]
    try:
        for future in as_completed(futures, loop=c.loop):
            future.result()  # raises the task's exception, if it failed for good
            if done:
                done()
        return c.gather(futures)
    finally:
        c.cancel([f for f in futures if not f.done()])

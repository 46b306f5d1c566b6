"""The archive's MongoDB for tests: nx-27017, a MongoDB wire-protocol server
on SQLite (PyPI, pinned in requirements-dev.txt), standing in for a real
MongoDB, which cannot be installed here. It speaks the protocol pymongo
uses (inserts under unique indexes, finds with sort and limit, GridFS); it
is slow on bulk upserts, which the archive never does.

    mongo = start_mongo(tmp_path)      # a free loopback port, data under tmp_path
    mongo.url                          # mongodb://127.0.0.1:<port>/jobmaster
    mongo.stop(); mongo.start()        # the same port and data: an outage
"""
import os
import shutil
import sys

from tests.support.procs import Process, free_port, port_open, wait_until


def nx_binary():
    path = os.path.join(os.path.dirname(sys.executable), "nx-27017")
    if os.access(path, os.X_OK):
        return path
    path = shutil.which("nx-27017")
    if not path:
        raise RuntimeError("nx-27017 is not installed (run `make deps`)")
    return path


class Mongo:
    def __init__(self, workdir, port=None, database="jobmaster"):
        self.workdir = workdir
        self.port = port or free_port()
        self.url = "mongodb://127.0.0.1:%d/%s" % (self.port, database)
        self.process = None
        os.makedirs(os.path.join(workdir, "data"), exist_ok=True)

    def start(self):
        argv = [nx_binary(), "--host", "127.0.0.1", "-p", str(self.port),
                "--data-dir", os.path.join(self.workdir, "data"),
                "--log-file", os.path.join(self.workdir, "nx.log"),
                "--pid-file", os.path.join(self.workdir, "nx.pid")]
        self.process = Process(argv, os.path.join(self.workdir, "nx.out"))
        try:
            wait_until(lambda: port_open(self.port) or not self.process.alive(),
                       timeout=30, what="nx-27017 on %d" % self.port)
        except TimeoutError:
            self.process.stop()
            raise
        if not self.process.alive():
            raise RuntimeError("nx-27017 exited:\n" + self.process.log_tail())
        return self

    def stop(self):
        if self.process is not None:
            self.process.stop()
            wait_until(lambda: not port_open(self.port), timeout=10, what="nx-27017 to stop")
            self.process = None

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.url, serverSelectionTimeoutMS=5000)


def start_mongo(workdir, port=None):
    return Mongo(str(workdir), port).start()

"""Files written so that a killed process never leaves a half-written one: atomic writes (a hidden
temporary name in the same folder, then one rename), hidden temporary folders, and the cleanup of
what killed writers left behind."""
import json
import os
import shutil
import tempfile
import time

from errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()
TMP = ".tmp-"  # hidden temporary files and folders: .tmp-<pid>-<random>, the pid being their writer's


def tmp_dir(parent) -> str:
    """A hidden temporary folder in parent, named after this process, with the permissions the
    user's umask gives (not mkdtemp's 0700, which locks other users out of a shared volume)."""
    path = tempfile.mkdtemp(prefix=f"{TMP}{os.getpid()}-", dir=parent)
    os.chmod(path, 0o777 & ~UMASK)
    return path


def check_writable(folder, flag: str | None = None) -> None:
    """Make folder if it is missing and write (then remove) a hidden file in it, so that nothing
    (a run, a study, a dataset, a result) is computed only to find that it cannot be kept.
    UserError in one line naming the folder, why, who owns it, and the fix: flag (the option that
    moves the folder, if there is one) or, in a container, how to mount it."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f"{TMP}{os.getpid()}-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write in {folder}/ ({e.strerror or e}{_ownership(folder)}); {_fix(flag)}") from None


def _ownership(folder) -> str:
    """`; /app/models: owner uid 0, mode 755; this process: uid 1000`, of the nearest path that exists."""
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"; {path}: owner uid {st.st_uid}, mode {st.st_mode & 0o7777:o}; this process: uid {os.getuid()}"


def _fix(flag: str | None) -> str:
    other = f", or give a writable {flag}" if flag else ""
    if os.environ.get("HARNESS_IMAGE"):  # set by the Dockerfile: a bind mount Docker made as root, say
        return f'create the folder on the host before `docker run` and pass --user "$(id -u):$(id -g)"{other}'
    return f"make it writable for uid {os.getuid()}{other}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale(parent) -> list[str]:
    """Remove the hidden temporary files and folders that killed processes left in parent: those
    whose writer no longer runs (older names without a pid: when over a day old). Returns them."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(TMP):
            continue
        path = os.path.join(parent, name)
        pid = name[len(TMP):].split("-", 1)[0]
        try:
            stale = not pid_alive(int(pid)) if pid.isdigit() else time.time() - os.path.getmtime(path) > 86400
            if stale:
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
                removed.append(path)
        except OSError:  # gone meanwhile, or not ours to remove
            pass
    return removed


def write_text(path, text: str):
    """Write a file atomically (temporary file in the same folder, then rename); on failure
    (a full disk) the temporary file is removed and the OSError raised."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data: bytes):
    """write_text for bytes (a picture)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP}{os.getpid()}-", dir=os.path.dirname(path) or ".")
    os.chmod(tmp, 0o666 & ~UMASK)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = path
        raise


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False))

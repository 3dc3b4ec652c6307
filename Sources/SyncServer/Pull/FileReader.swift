#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only file descriptor, closed when the reader is released.
///
/// Closing any descriptor of a file drops every POSIX lock this process holds on it, including
/// SQLite's, after which another process may checkpoint and delete the WAL (protocol note, pitfall 2).
/// So the database file is read only through one long-lived descriptor with `pread` (`PageSource`
/// keeps its reader for the process lifetime). SQLite locks the database and `-shm` files, never the
/// WAL, so WAL readers come and go.
public final class FileReader: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        self.path = path
        self.fd = fd
    }

    deinit { close(self.fd) }

    /// The current size of the file, or 0 when it cannot be read.
    public var size: Int {
        var info = stat()
        guard fstat(self.fd, &info) == 0 else { return 0 }
        return Int(info.st_size)
    }

    /// The inode, to notice a file replaced on disk.
    var inode: UInt64 {
        var info = stat()
        guard fstat(self.fd, &info) == 0 else { return 0 }
        return UInt64(info.st_ino)
    }

    /// Reads up to `count` bytes at `offset` into `buffer`; returns the number of bytes read.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(self.fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    public func read(count: Int, at offset: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { self.read(into: $0, at: offset) }
        bytes.removeLast(count - n)
        return bytes
    }
}

import Foundation
import Hummingbird
import NIOCore

/// A file sent as a response body in 256 KiB chunks, closed once sent or abandoned (and deleted
/// then, for a temporary file such as a backup).
final class StreamedFile: @unchecked Sendable {
    private let handle: FileHandle
    private let path: String
    private let removeWhenClosed: Bool
    private var closed = false

    init?(path: String, removeWhenClosed: Bool) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        self.handle = handle
        self.path = path
        self.removeWhenClosed = removeWhenClosed
    }

    /// `length` bytes from `offset`; a file that ends sooner fails the body.
    func body(offset: Int, length: Int) -> ResponseBody {
        ResponseBody(contentLength: length) { writer in
            defer { self.close() }
            try self.handle.seek(toOffset: UInt64(offset))
            var remaining = length
            while remaining > 0 {
                let data = try self.handle.read(upToCount: min(remaining, 256 << 10)) ?? Data()
                if data.isEmpty { throw NodeError.io("\(self.path) shrank while being sent") }
                try await writer.write(ByteBuffer(bytes: data))
                remaining -= data.count
            }
            try await writer.finish(nil)
        }
    }

    func close() {
        guard !self.closed else { return }
        self.closed = true
        try? self.handle.close()
        if self.removeWhenClosed { try? FileManager.default.removeItem(atPath: self.path) }
    }

    deinit { self.close() }
}

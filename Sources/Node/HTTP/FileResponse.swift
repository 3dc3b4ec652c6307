import Foundation
import Hummingbird

/// Files sent as response bodies (backups, namespace files for another member) with Hummingbird's
/// file I/O, which reads on NIO's thread pool so a slow disk never blocks the cooperative pool.
enum FileResponse {
    /// `length` bytes of `path` from `offset`. With `temporary`, the file (a backup) is deleted once
    /// the body was sent or dropped.
    static func body(
        _ path: String,
        offset: Int = 0,
        length: Int,
        temporary: Bool = false,
        context: NodeRequestContext
    ) async throws(NodeError) -> ResponseBody {
        let cleanup = temporary ? TemporaryFile(path) : nil
        guard length > 0 else { return ResponseBody() }
        let body: ResponseBody
        do {
            body = try await FileIO().loadFile(path: path, range: offset...(offset + length - 1), context: context)
        } catch {
            throw NodeError(.io, "cannot read \(path)", status: 500)
        }
        guard let cleanup else { return body }
        return ResponseBody(contentLength: body.contentLength) { writer in
            try await body.write(writer)
            cleanup.remove()
        }
    }
}

/// Deletes a file when it is no longer needed, at the latest when the last reference goes away.
final class TemporaryFile: Sendable {
    let path: String

    init(_ path: String) { self.path = path }

    func remove() { try? FileManager.default.removeItem(atPath: self.path) }

    deinit { self.remove() }
}

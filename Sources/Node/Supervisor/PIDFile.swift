import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Records each backend's pid under `_state/run/` so that a node restarted after being killed can
/// stop backends it left behind (a tursodb binary, unlike the built-in backend, does not notice
/// that its parent died).
enum PIDFile {
    static func directory(_ stateDirectory: String) -> String { stateDirectory + "/run" }

    static func write(directory stateDirectory: String, name: String, pid: Int32) {
        let dir = self.directory(stateDirectory)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? "\(pid)\n".write(toFile: "\(dir)/\(name).pid", atomically: true, encoding: .utf8)
    }

    static func remove(directory stateDirectory: String, name: String) {
        try? FileManager.default.removeItem(atPath: "\(self.directory(stateDirectory))/\(name).pid")
    }

    /// Kills leftover backends whose command line still names their database; returns their names.
    static func reapOrphans(stateDirectory: String, databasePath: (String) -> String) -> [String] {
        let dir = self.directory(stateDirectory)
        var reaped: [String] = []
        for file in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where file.hasSuffix(".pid") {
            let name = String(file.dropLast(4))
            defer { try? FileManager.default.removeItem(atPath: "\(dir)/\(file)") }
            guard NamespaceName.isValid(name),
                let text = try? String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
                let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            else { continue }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.contains("--sync-server"), arguments.contains(databasePath(name)) else { continue }
            _ = kill(-pid, SIGKILL)
            _ = kill(pid, SIGKILL)
            reaped.append(name)
        }
        return reaped
    }
}

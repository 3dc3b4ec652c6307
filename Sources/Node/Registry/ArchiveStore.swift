import Foundation

/// Archived namespaces: `<data-dir>/archive/<name>.<timestamp>/` holding the database and its WAL.
struct ArchiveStore: Sendable {
    let directory: String

    /// `20261121T235959Z`: sortable, and parsed back to decide purges.
    static func timestamp(_ milliseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func parseTimestamp(_ text: some StringProtocol) -> Int64? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: String(text)).map { Int64($0.timeIntervalSince1970 * 1000) }
    }

    /// Moves `files` (those that exist) into a new archive folder for `name`; returns its path.
    func archive(name: String, files: [String], now: Int64) throws(NodeError) -> String {
        let fm = FileManager.default
        var folder = "\(self.directory)/\(name).\(Self.timestamp(now))"
        var suffix = 1
        while fm.fileExists(atPath: folder) {
            suffix += 1
            folder = "\(self.directory)/\(name).\(Self.timestamp(now))-\(suffix)"
        }
        do {
            try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for file in files where fm.fileExists(atPath: file) {
                try fm.moveItem(atPath: file, toPath: folder + "/" + (file as NSString).lastPathComponent)
            }
        } catch {
            throw .io("cannot archive namespace \(name) into \(folder): \(error.localizedDescription)")
        }
        return folder
    }

    /// Moves files of `name` that exist without a registry record (left by an interrupted earlier
    /// life, or put there by hand) into `archive/<name>.stale.<timestamp>/`, so they are never served
    /// as a new namespace's data nor overwritten silently. Returns the folder, nil when there were none.
    func archiveLeftovers(name: String, databasePath base: String, now: Int64) throws(NodeError) -> String? {
        let files = NamespaceFiles.allPaths(databasePath: base)
        guard files.contains(where: { FileManager.default.fileExists(atPath: $0) }) else { return nil }
        return try self.archive(name: name + ".stale", files: files, now: now)
    }

    /// Every archive folder with its archive time (from its name, else its modification time).
    func list() -> [(name: String, archivedAt: Int64)] {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: self.directory) else { return [] }
        return entries.compactMap { entry in
            guard let dot = entry.lastIndex(of: ".") else { return nil }
            let stamp = entry[entry.index(after: dot)...].prefix { $0 != "-" }
            if let time = Self.parseTimestamp(stamp) { return (entry, time) }
            guard
                let modified = (try? fm.attributesOfItem(atPath: "\(self.directory)/\(entry)"))?[.modificationDate]
                    as? Date
            else { return nil }
            return (entry, Int64(modified.timeIntervalSince1970 * 1000))
        }
    }

    func purge(_ archive: String) throws(NodeError) {
        guard !archive.contains("/"), archive != ".", archive != ".." else { return }
        do {
            try FileManager.default.removeItem(atPath: "\(self.directory)/\(archive)")
        } catch {
            throw .io("cannot purge archive \(archive): \(error.localizedDescription)")
        }
    }
}

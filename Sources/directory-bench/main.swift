import Foundation
import Node

// Creates through the one-node cluster log, then a restart over the result.
// Usage: swift run -c release directory-bench [namespaces (100000)] [concurrency (64)]
let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let namespaces = arguments.first ?? 100_000
let concurrency = arguments.dropFirst().first ?? 64
let report = try await DirectoryBenchmark.run(namespaces: namespaces, concurrency: concurrency)
print(report)

/// libFuzzer entry: any text either parses to a duration within Go's range that formats without
/// trapping and whose range check agrees with the plain parse, or is refused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDuration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let seconds = GoDuration.parse(text) else { return 0 }
    precondition(seconds >= 0 && seconds <= GoDuration.maximumSeconds, "out of range: \(text) -> \(seconds)")
    _ = GoDuration.format(seconds)
    _ = Duration.seconds(seconds)
    _ = Int64(seconds * 1000)
    if case .success(let checked) = GoDuration.parse(text, field: "fuzz", range: 0...86_400) {
        precondition(checked == seconds && checked <= 86_400)
    }
    return 0
}

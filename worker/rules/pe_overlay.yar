import "pe"
import "math"

// Packed or dropper-style PE files: a large, near-random blob appended after the image.
rule PE_High_Entropy_Overlay
{
    meta:
        description = "PE file with an overlay of at least 4 KiB and entropy above 7.5 bits/byte"
        threat_name = "Win32.Dropper.EncryptedOverlay"
        classification = "suspicious"
        factor = 2
    condition:
        pe.is_pe and pe.overlay.size >= 4096
        and math.entropy(pe.overlay.offset, pe.overlay.size) > 7.5
}

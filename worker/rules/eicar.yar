// The EICAR anti-malware test file: every scanner is expected to report it.
rule EICAR_Test_File
{
    meta:
        description = "EICAR standard anti-malware test string"
        threat_name = "Text.Test.EICAR"
        classification = "malicious"
        factor = 5
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar
}

; A minimal NSIS installer that installs the EICAR test file (scanhub test sample).
Unicode true
SetCompressor /SOLID lzma
Name "EICAR test"
OutFile "eicar-nsis-setup.exe"
RequestExecutionLevel user
InstallDir "$TEMP\eicar-test"
Section "Main"
  SetOutPath "$INSTDIR"
  File "eicar.com"
SectionEnd

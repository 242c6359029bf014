from pai_verify.spec import main

main()

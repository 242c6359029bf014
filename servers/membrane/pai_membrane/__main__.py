from pai_membrane.spec import main

main()

from pai_mail.spec import main

main()
